//go:build !noasm

#include "textflag.h"

// func smallKernelAVX2(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int, mask *int32, rows int)
//
// Y0..Y9 hold the 5×16 tile of c (two registers a row). For each inner
// index l it loads row l of b, the lanes that mask selects (the rest
// read as zero), broadcasts a(r, l) for the 5 rows r, multiplies and
// adds (VMULPS then VADDPS, never fused). a(r, l) is at a + 4·(r·ars +
// l·als), b(l, j) at b + 4·(l·ldb + j). It stores the first rows rows
// of the tile, the lanes that mask selects.
TEXT ·smallKernelAVX2(SB), NOSPLIT, $0-80
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ ars+16(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10
	MOVQ als+24(FP), R11
	SHLQ $2, R11
	MOVQ b+32(FP), DI
	MOVQ mask+64(FP), R13
	MOVQ ldb+40(FP), R12
	SHLQ $2, R12
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	MOVQ rows+72(FP), BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9

loop:
	VMOVDQU (R13), Y13
	VMASKMOVPS (DI), Y13, Y10
	VMOVDQU 32(R13), Y13
	VMASKMOVPS 32(DI), Y13, Y11
	VBROADCASTSS (SI), Y12
	VMULPS Y10, Y12, Y13
	VMULPS Y11, Y12, Y14
	VADDPS Y13, Y0, Y0
	VADDPS Y14, Y1, Y1
	VBROADCASTSS (SI)(R9*1), Y12
	VMULPS Y10, Y12, Y13
	VMULPS Y11, Y12, Y14
	VADDPS Y13, Y2, Y2
	VADDPS Y14, Y3, Y3
	VBROADCASTSS (SI)(R9*2), Y12
	VMULPS Y10, Y12, Y13
	VMULPS Y11, Y12, Y14
	VADDPS Y13, Y4, Y4
	VADDPS Y14, Y5, Y5
	VBROADCASTSS (SI)(R10*1), Y12
	VMULPS Y10, Y12, Y13
	VMULPS Y11, Y12, Y14
	VADDPS Y13, Y6, Y6
	VADDPS Y14, Y7, Y7
	VBROADCASTSS (SI)(R9*4), Y12
	VMULPS Y10, Y12, Y13
	VMULPS Y11, Y12, Y14
	VADDPS Y13, Y8, Y8
	VADDPS Y14, Y9, Y9
	ADDQ R11, SI
	ADDQ R12, DI
	DECQ CX
	JNZ loop

	VMOVDQU (R13), Y13
	VMOVDQU 32(R13), Y14
	VMASKMOVPS Y0, Y13, (DX)
	VMASKMOVPS Y1, Y14, 32(DX)
	DECQ BX
	JZ done
	ADDQ R8, DX
	VMASKMOVPS Y2, Y13, (DX)
	VMASKMOVPS Y3, Y14, 32(DX)
	DECQ BX
	JZ done
	ADDQ R8, DX
	VMASKMOVPS Y4, Y13, (DX)
	VMASKMOVPS Y5, Y14, 32(DX)
	DECQ BX
	JZ done
	ADDQ R8, DX
	VMASKMOVPS Y6, Y13, (DX)
	VMASKMOVPS Y7, Y14, 32(DX)
	DECQ BX
	JZ done
	ADDQ R8, DX
	VMASKMOVPS Y8, Y13, (DX)
	VMASKMOVPS Y9, Y14, 32(DX)

done:
	VZEROUPPER
	RET

// func packTAVX2(k int, b *float32, idx *int32, mask *int32, dst *float32)
//
// Gathers a panel of a transposed b: for each l < k, the 16 elements
// b[idx[j] + l] (the lanes that mask selects; the rest zero) go to
// dst[16·l + j].
TEXT ·packTAVX2(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ b+8(FP), DI
	MOVQ idx+16(FP), R12
	VMOVDQU (R12), Y13
	VMOVDQU 32(R12), Y14
	MOVQ mask+24(FP), R13
	MOVQ dst+32(FP), DX

loopP:
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VMOVDQU (R13), Y11
	VGATHERDPS Y11, (DI)(Y13*4), Y8
	VMOVDQU 32(R13), Y12
	VGATHERDPS Y12, (DI)(Y14*4), Y9
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, 32(DX)
	ADDQ $4, DI
	ADDQ $64, DX
	DECQ CX
	JNZ loopP
	VZEROUPPER
	RET
