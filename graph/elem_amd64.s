//go:build !noasm

#include "textflag.h"

// func vvF32(op int, c, a, b *float32, n int)
//
// c[i] = a[i] op b[i] for i < n rounded down to a multiple of 8; op is
// binaryOp (0 add, 1 sub, 2 mul, 3 div).
TEXT ·vvF32(SB), NOSPLIT, $0-40
	MOVQ op+0(FP), AX
	MOVQ c+8(FP), DX
	MOVQ a+16(FP), SI
	MOVQ b+24(FP), DI
	MOVQ n+32(FP), CX
	SHRQ $3, CX
	JZ vvdone
	CMPQ AX, $1
	JEQ vvsub
	CMPQ AX, $2
	JEQ vvmul
	CMPQ AX, $3
	JEQ vvdiv

vvadd:
	VMOVUPS (SI), Y0
	VADDPS (DI), Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ vvadd
	JMP vvdone

vvsub:
	VMOVUPS (SI), Y0
	VSUBPS (DI), Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ vvsub
	JMP vvdone

vvmul:
	VMOVUPS (SI), Y0
	VMULPS (DI), Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ vvmul
	JMP vvdone

vvdiv:
	VMOVUPS (SI), Y0
	VDIVPS (DI), Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ vvdiv
	JMP vvdone

vvdone:
	VZEROUPPER
	RET

// func vsF32(op int, c, a *float32, s float32, n int, rev int)
//
// c[i] = a[i] op s, or s op a[i] when rev is 1, for i < n rounded down to
// a multiple of 8.
TEXT ·vsF32(SB), NOSPLIT, $0-48
	MOVQ op+0(FP), AX
	MOVQ c+8(FP), DX
	MOVQ a+16(FP), SI
	VBROADCASTSS s+24(FP), Y1
	MOVQ n+32(FP), CX
	MOVQ rev+40(FP), BX
	SHRQ $3, CX
	JZ vsdone
	CMPQ AX, $0
	JEQ vsadd
	CMPQ AX, $2
	JEQ vsmul
	TESTQ BX, BX
	JNZ vsrev
	CMPQ AX, $1
	JEQ vssub
	JMP vsdiv

vsrev:
	CMPQ AX, $1
	JEQ svsub
	JMP svdiv

vsadd:
	VMOVUPS (SI), Y0
	VADDPS Y1, Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ vsadd
	JMP vsdone

vssub:
	VMOVUPS (SI), Y0
	VSUBPS Y1, Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ vssub
	JMP vsdone

vsmul:
	VMOVUPS (SI), Y0
	VMULPS Y1, Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ vsmul
	JMP vsdone

vsdiv:
	VMOVUPS (SI), Y0
	VDIVPS Y1, Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ vsdiv
	JMP vsdone

svsub:
	VMOVUPS (SI), Y0
	VSUBPS Y0, Y1, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ svsub
	JMP vsdone

svdiv:
	VMOVUPS (SI), Y0
	VDIVPS Y0, Y1, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ svdiv
	JMP vsdone

vsdone:
	VZEROUPPER
	RET

// func maskF32(out, x, grad *float32, n int)
//
// out[i] = grad[i] where x[i] > 0 as an int32 (a positive number or NaN),
// +0 elsewhere, for i < n rounded down to a multiple of 8.
TEXT ·maskF32(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DX
	MOVQ x+8(FP), SI
	MOVQ grad+16(FP), DI
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ maskdone
	VPXOR Y15, Y15, Y15

maskloop:
	VMOVDQU (SI), Y0
	VPCMPGTD Y15, Y0, Y1
	VPAND (DI), Y1, Y2
	VMOVDQU Y2, (DX)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ maskloop

maskdone:
	VZEROUPPER
	RET

// func unaryF32(neg int, c, a *float32, n int)
//
// c[i] = -a[i] (the sign bit flipped) when neg is 1, a[i]·a[i] otherwise,
// for i < n rounded down to a multiple of 8.
TEXT ·unaryF32(SB), NOSPLIT, $0-32
	MOVQ neg+0(FP), AX
	MOVQ c+8(FP), DX
	MOVQ a+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ unarydone
	TESTQ AX, AX
	JZ square
	MOVL $0x80000000, BX
	VMOVD BX, X1
	VPBROADCASTD X1, Y1

negloop:
	VMOVUPS (SI), Y0
	VXORPS Y1, Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ negloop
	JMP unarydone

square:
	VMOVUPS (SI), Y0
	VMULPS Y0, Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ square

unarydone:
	VZEROUPPER
	RET

// func addToF32(dst, src *float32, n int)
//
// dst[i] += src[i] for i < n rounded down to a multiple of 8.
TEXT ·addToF32(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DX
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ adddone

addloop:
	VMOVUPS (DX), Y0
	VADDPS (SI), Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ addloop

adddone:
	VZEROUPPER
	RET

// func copyRunsF32(dst, src *float32, n, count, ds, ss int)
//
// Copies count runs of n float32 (n a multiple of 8): the i-th from
// src[i*ss:] to dst[i*ds:].
TEXT ·copyRunsF32(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), BX
	MOVQ count+24(FP), CX
	MOVQ ds+32(FP), R8
	MOVQ ss+40(FP), R9
	SHRQ $3, BX
	JZ copyrunsdone
	TESTQ CX, CX
	JZ copyrunsdone
	SHLQ $2, R8
	SHLQ $2, R9

copyrun:
	MOVQ DX, DI
	MOVQ SI, R10
	MOVQ BX, AX

copyrungroup:
	VMOVUPS (R10), Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, R10
	ADDQ $32, DI
	DECQ AX
	JNZ copyrungroup
	ADDQ R8, DX
	ADDQ R9, SI
	DECQ CX
	JNZ copyrun

copyrunsdone:
	VZEROUPPER
	RET

// func addRunsF32(dst, src *float32, n, count, ds, ss int)
//
// Adds count runs of n float32 (n a multiple of 8), one after the other:
// dst[i*ds+j] += src[i*ss+j]. Runs of dst may overlap, as the i-th run is
// added before the next is read.
TEXT ·addRunsF32(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), BX
	MOVQ count+24(FP), CX
	MOVQ ds+32(FP), R8
	MOVQ ss+40(FP), R9
	SHRQ $3, BX
	JZ addrunsdone
	TESTQ CX, CX
	JZ addrunsdone
	SHLQ $2, R8
	SHLQ $2, R9

addrun:
	MOVQ DX, DI
	MOVQ SI, R10
	MOVQ BX, AX

addrungroup:
	VMOVUPS (DI), Y0
	VADDPS (R10), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, R10
	ADDQ $32, DI
	DECQ AX
	JNZ addrungroup
	ADDQ R8, DX
	ADDQ R9, SI
	DECQ CX
	JNZ addrun

addrunsdone:
	VZEROUPPER
	RET

// func patches3F32(dst, r0, r1, r2 *float32, count, step int)
//
// Writes count 3×3 patches of one channel: dst[9i+3j:9i+3j+3] =
// rj[i*step:i*step+3]. Each row of a patch is written as 4 values, the
// fourth overwritten by the next row or the next patch, so the caller
// leaves one more patch after these to write and rows readable to
// (count-1)*step+4 values.
TEXT ·patches3F32(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), DI
	MOVQ r2+24(FP), R8
	MOVQ count+32(FP), CX
	MOVQ step+40(FP), R9
	SHLQ $2, R9
	TESTQ CX, CX
	JZ patchesdone

patchesloop:
	VMOVUPS (SI), X0
	VMOVUPS (DI), X1
	VMOVUPS (R8), X2
	VMOVUPS X0, (DX)
	VMOVUPS X1, 12(DX)
	VMOVUPS X2, 24(DX)
	ADDQ R9, SI
	ADDQ R9, DI
	ADDQ R9, R8
	ADDQ $36, DX
	DECQ CX
	JNZ patchesloop

patchesdone:
	VZEROUPPER
	RET
