//go:build !noasm

#include "textflag.h"

// func smallKernelAVX2(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int, mask *int32, rows int)
//
// Y0..Y7 hold the 4×16 tile of c (two registers a row). For each inner
// index l it loads row l of b, the lanes that mask selects (the rest
// read as zero), broadcasts a(r, l) for the 4 rows r, multiplies and
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
	VMOVDQU (R13), Y13
	VMOVDQU 32(R13), Y14
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
	VMASKMOVPS (DI), Y13, Y8
	VMASKMOVPS 32(DI), Y14, Y9
	VBROADCASTSS (SI), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y0, Y0
	VADDPS Y12, Y1, Y1
	VBROADCASTSS (SI)(R9*1), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y2, Y2
	VADDPS Y12, Y3, Y3
	VBROADCASTSS (SI)(R9*2), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y4, Y4
	VADDPS Y12, Y5, Y5
	VBROADCASTSS (SI)(R10*1), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y6, Y6
	VADDPS Y12, Y7, Y7
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

done:
	VZEROUPPER
	RET

// func smallKernelAVX2T(k int, a *float32, ars, als int, b *float32, idx *int32, c *float32, ldc int, mask *int32, rows int)
//
// smallKernelAVX2 for b(l, j) = b[idx[j] + l]: row l of the panel is
// gathered (VGATHERDPS) from the offsets idx, the lanes that mask selects.
TEXT ·smallKernelAVX2T(SB), NOSPLIT, $0-80
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ ars+16(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10
	MOVQ als+24(FP), R11
	SHLQ $2, R11
	MOVQ b+32(FP), DI
	MOVQ mask+64(FP), R13
	MOVQ idx+40(FP), R12
	VMOVDQU (R12), Y13
	VMOVDQU 32(R12), Y14
	VMOVDQU (R13), Y15
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

loopT:
	VMOVDQA Y15, Y11
	VGATHERDPS Y11, (DI)(Y13*4), Y8
	VMOVDQU 32(R13), Y12
	VGATHERDPS Y12, (DI)(Y14*4), Y9
	VBROADCASTSS (SI), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y0, Y0
	VADDPS Y12, Y1, Y1
	VBROADCASTSS (SI)(R9*1), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y2, Y2
	VADDPS Y12, Y3, Y3
	VBROADCASTSS (SI)(R9*2), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y4, Y4
	VADDPS Y12, Y5, Y5
	VBROADCASTSS (SI)(R10*1), Y10
	VMULPS Y8, Y10, Y11
	VMULPS Y9, Y10, Y12
	VADDPS Y11, Y6, Y6
	VADDPS Y12, Y7, Y7
	ADDQ R11, SI
	ADDQ $4, DI
	DECQ CX
	JNZ loopT

	VMOVDQU (R13), Y13
	VMOVDQU 32(R13), Y14
	VMASKMOVPS Y0, Y13, (DX)
	VMASKMOVPS Y1, Y14, 32(DX)
	DECQ BX
	JZ doneT
	ADDQ R8, DX
	VMASKMOVPS Y2, Y13, (DX)
	VMASKMOVPS Y3, Y14, 32(DX)
	DECQ BX
	JZ doneT
	ADDQ R8, DX
	VMASKMOVPS Y4, Y13, (DX)
	VMASKMOVPS Y5, Y14, 32(DX)
	DECQ BX
	JZ doneT
	ADDQ R8, DX
	VMASKMOVPS Y6, Y13, (DX)
	VMASKMOVPS Y7, Y14, 32(DX)

doneT:
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
