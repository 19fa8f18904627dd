//go:build !noasm

#include "textflag.h"

// Per-channel loops of batch normalisation over rows of float32 channels
// (channels_amd64.go): each goes through rows rows of x, stride elements
// apart, and the first n channels of each (n a multiple of 4, or of 8 for
// the float32 ones), with float64 arithmetic four lanes at a time. Every
// lane is one channel, added up over the rows in their order, a multiply
// then an add, as the Go loops do.

// func chStatsAVX2(s1, s2, shift *float64, x *float32, rows, stride, n int)
//
// d = float64(x[r][j]) − shift[j]; s1[j] += d; s2[j] += d·d.
TEXT ·chStatsAVX2(SB), NOSPLIT, $0-56
	MOVQ s1+0(FP), R8
	MOVQ s2+8(FP), R9
	MOVQ shift+16(FP), R10
	MOVQ x+24(FP), SI
	MOVQ rows+32(FP), CX
	MOVQ stride+40(FP), BX
	SHLQ $2, BX
	MOVQ n+48(FP), DX
	TESTQ CX, CX
	JZ stdone
	TESTQ DX, DX
	JZ stdone

strow:
	XORQ AX, AX

stcol:
	VCVTPS2PD (SI)(AX*4), Y0
	VSUBPD (R10)(AX*8), Y0, Y0
	VADDPD (R8)(AX*8), Y0, Y1
	VMOVUPD Y1, (R8)(AX*8)
	VMULPD Y0, Y0, Y2
	VADDPD (R9)(AX*8), Y2, Y2
	VMOVUPD Y2, (R9)(AX*8)
	ADDQ $4, AX
	CMPQ AX, DX
	JLT stcol
	ADDQ BX, SI
	DECQ CX
	JNZ strow

stdone:
	VZEROUPPER
	RET

// func chNormAVX2(dst, x *float32, mu, is *float64, rows, stride, n int)
//
// dst[r][j] = float32((float64(x[r][j]) − mu[j])·is[j]).
TEXT ·chNormAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ mu+16(FP), R8
	MOVQ is+24(FP), R9
	MOVQ rows+32(FP), CX
	MOVQ stride+40(FP), BX
	SHLQ $2, BX
	MOVQ n+48(FP), DX
	TESTQ CX, CX
	JZ nmdone
	TESTQ DX, DX
	JZ nmdone

nmrow:
	XORQ AX, AX

nmcol:
	VCVTPS2PD (SI)(AX*4), Y0
	VSUBPD (R8)(AX*8), Y0, Y0
	VMULPD (R9)(AX*8), Y0, Y0
	VCVTPD2PSY Y0, X1
	VMOVUPS X1, (DI)(AX*4)
	ADDQ $4, AX
	CMPQ AX, DX
	JLT nmcol
	ADDQ BX, SI
	ADDQ BX, DI
	DECQ CX
	JNZ nmrow

nmdone:
	VZEROUPPER
	RET

// func chSumsAVX2(s1, s2 *float64, gr, x *float32, rows, stride, n int)
//
// s1[j] += float64(g[r][j]); s2[j] += float64(g[r][j])·float64(x[r][j]).
// With s1 nil, only s2.
TEXT ·chSumsAVX2(SB), NOSPLIT, $0-56
	MOVQ s1+0(FP), R8
	MOVQ s2+8(FP), R9
	MOVQ gr+16(FP), SI
	MOVQ x+24(FP), DI
	MOVQ rows+32(FP), CX
	MOVQ stride+40(FP), BX
	SHLQ $2, BX
	MOVQ n+48(FP), DX
	TESTQ CX, CX
	JZ smdone
	TESTQ DX, DX
	JZ smdone
	TESTQ R8, R8
	JZ dtrow

smrow:
	XORQ AX, AX

smcol:
	VCVTPS2PD (SI)(AX*4), Y0
	VADDPD (R8)(AX*8), Y0, Y1
	VMOVUPD Y1, (R8)(AX*8)
	VCVTPS2PD (DI)(AX*4), Y2
	VMULPD Y2, Y0, Y0
	VADDPD (R9)(AX*8), Y0, Y0
	VMOVUPD Y0, (R9)(AX*8)
	ADDQ $4, AX
	CMPQ AX, DX
	JLT smcol
	ADDQ BX, SI
	ADDQ BX, DI
	DECQ CX
	JNZ smrow
	JMP smdone

dtrow:
	XORQ AX, AX

dtcol:
	VCVTPS2PD (SI)(AX*4), Y0
	VCVTPS2PD (DI)(AX*4), Y2
	VMULPD Y2, Y0, Y0
	VADDPD (R9)(AX*8), Y0, Y0
	VMOVUPD Y0, (R9)(AX*8)
	ADDQ $4, AX
	CMPQ AX, DX
	JLT dtcol
	ADDQ BX, SI
	ADDQ BX, DI
	DECQ CX
	JNZ dtrow

smdone:
	VZEROUPPER
	RET

// func chNormBackAVX2(dst, gr, x *float32, s, a, b *float64, rows, stride, n int)
//
// dst[r][j] = float32(s[j]·((float64(g[r][j]) − a[j]) − float64(x[r][j])·b[j])).
TEXT ·chNormBackAVX2(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ x+16(FP), R11
	MOVQ s+24(FP), R8
	MOVQ a+32(FP), R9
	MOVQ b+40(FP), R10
	MOVQ rows+48(FP), CX
	MOVQ stride+56(FP), BX
	SHLQ $2, BX
	MOVQ n+64(FP), DX
	TESTQ CX, CX
	JZ nbdone
	TESTQ DX, DX
	JZ nbdone

nbrow:
	XORQ AX, AX

nbcol:
	VCVTPS2PD (SI)(AX*4), Y0
	VSUBPD (R9)(AX*8), Y0, Y0
	VCVTPS2PD (R11)(AX*4), Y1
	VMULPD (R10)(AX*8), Y1, Y1
	VSUBPD Y1, Y0, Y0
	VMULPD (R8)(AX*8), Y0, Y0
	VCVTPD2PSY Y0, X1
	VMOVUPS X1, (DI)(AX*4)
	ADDQ $4, AX
	CMPQ AX, DX
	JLT nbcol
	ADDQ BX, SI
	ADDQ BX, R11
	ADDQ BX, DI
	DECQ CX
	JNZ nbrow

nbdone:
	VZEROUPPER
	RET

// func chAffineAVX2(dst, x, s, b *float32, rows, stride, n int)
//
// dst[r][j] = x[r][j]·s[j] + b[j] in float32, eight lanes at a time;
// with b nil, dst[r][j] = x[r][j]·s[j].
TEXT ·chAffineAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ s+16(FP), R8
	MOVQ b+24(FP), R9
	MOVQ rows+32(FP), CX
	MOVQ stride+40(FP), BX
	SHLQ $2, BX
	MOVQ n+48(FP), DX
	TESTQ CX, CX
	JZ afdone
	TESTQ DX, DX
	JZ afdone
	TESTQ R9, R9
	JZ scrow

afrow:
	XORQ AX, AX

afcol:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS (R8)(AX*4), Y0, Y0
	VADDPS (R9)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, DX
	JLT afcol
	ADDQ BX, SI
	ADDQ BX, DI
	DECQ CX
	JNZ afrow
	JMP afdone

scrow:
	XORQ AX, AX

sccol:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS (R8)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, DX
	JLT sccol
	ADDQ BX, SI
	ADDQ BX, DI
	DECQ CX
	JNZ scrow

afdone:
	VZEROUPPER
	RET
