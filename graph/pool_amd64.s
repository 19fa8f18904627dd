//go:build !noasm

#include "textflag.h"

// KEY32 loads eight float32 at src and leaves in dst the integer keys of
// orderKey, in 32-bit lanes: two's complement of sign and magnitude, with
// −0 equal to +0 and every NaN 0x7f800001, above +Inf. Y8 holds
// 0x7fffffff, Y9 0x7f800000 and Y10 0x7f800001 in every lane; Y0 and Y1
// are overwritten.
#define KEY32(src, dst) \
	VMOVDQU src, Y0; \
	VPAND Y8, Y0, Y1; \
	VPSRAD $31, Y0, Y0; \
	VPXOR Y0, Y1, dst; \
	VPSUBD Y0, dst, dst; \
	VPCMPGTD Y9, Y1, Y1; \
	VPBLENDVB Y1, Y10, dst, dst

// func poolRowAVX2(n, c int, x *float32, wc int, at *int, base int)
//
// The arg max of n 2×2 windows side by side, for c channels (a multiple
// of 8), as poolArgMax2: window q's top left value of channel j is at x +
// 4·(2·q·c + j), its top right c elements on, its bottom row wc elements
// on. at[q·c + j] gets base + 2·q·c + j plus the offset of the largest of
// the four (0, c, wc or wc + c), the later of two equal ones only if it
// is larger: top left against top right, bottom left against bottom
// right, then top against bottom. n ≥ 1.
TEXT ·poolRowAVX2(SB), NOSPLIT, $0-48
	MOVQ n+0(FP), CX
	MOVQ c+8(FP), R8
	MOVQ x+16(FP), SI
	MOVQ wc+24(FP), R9
	MOVQ at+32(FP), DI
	MOVQ base+40(FP), DX
	MOVL $0x7fffffff, AX
	VMOVQ AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x7f800000, AX
	VMOVQ AX, X9
	VPBROADCASTD X9, Y9
	MOVL $0x7f800001, AX
	VMOVQ AX, X10
	VPBROADCASTD X10, Y10
	VMOVQ R8, X11
	VPBROADCASTD X11, Y11
	VMOVQ R9, X12
	VPBROADCASTD X12, Y12
	MOVQ $0x0000000100000000, AX // 0, 1 as int32
	VMOVQ AX, X13
	MOVQ $0x0000000300000002, AX // 2, 3
	VMOVQ AX, X0
	VPUNPCKLQDQ X0, X13, X13     // 0, 1, 2, 3
	VPMOVSXDQ X13, Y13           // 0..3 as int64
	MOVQ $4, AX
	VMOVQ AX, X14
	VPBROADCASTQ X14, Y14
	VPADDQ Y13, Y14, Y14         // 4..7
	SHLQ $2, R8                  // c, wc and wc+c in bytes
	SHLQ $2, R9
	LEAQ (R8)(R9*1), R11

pixel:
	MOVQ R8, R10
	SHRQ $5, R10                 // chunks of 8 channels

chunk:
	KEY32((SI), Y2)
	KEY32((SI)(R8*1), Y3)
	VPCMPGTD Y2, Y3, Y4          // top right larger
	VPBLENDVB Y4, Y3, Y2, Y2
	VPAND Y11, Y4, Y4            // its offset: c or 0
	KEY32((SI)(R9*1), Y3)
	KEY32((SI)(R11*1), Y5)
	VPCMPGTD Y3, Y5, Y6          // bottom right larger
	VPBLENDVB Y6, Y5, Y3, Y3
	VPAND Y11, Y6, Y6
	VPADDD Y12, Y6, Y6           // its offset: wc + c or wc
	VPCMPGTD Y2, Y3, Y7          // bottom larger
	VPBLENDVB Y7, Y6, Y4, Y4
	VMOVQ DX, X15
	VPBROADCASTQ X15, Y15
	VPMOVSXDQ X4, Y5
	VEXTRACTI128 $1, Y4, X6
	VPMOVSXDQ X6, Y6
	VPADDQ Y15, Y5, Y5
	VPADDQ Y13, Y5, Y5
	VPADDQ Y15, Y6, Y6
	VPADDQ Y14, Y6, Y6
	VMOVDQU Y5, (DI)
	VMOVDQU Y6, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $8, DX
	DECQ R10
	JNZ chunk

	ADDQ R8, SI                  // the next window: c more elements on
	MOVQ R8, AX
	SHRQ $2, AX
	ADDQ AX, DX
	DECQ CX
	JNZ pixel
	VZEROUPPER
	RET
