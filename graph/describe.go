package graph

// The OpSpec attributes of medusa's ops (see OpSpec for the table).

func (op broadcastOp) describe() (string, map[string]int, float64) {
	return "broadcast", map[string]int{"axis": op.axis, "n": op.n}, 0
}
func (op sumAxisOp) describe() (string, map[string]int, float64) {
	return "sumaxis", map[string]int{"axis": op.axis}, 0
}
func (op matMulOp) describe() (string, map[string]int, float64) {
	return "matmul", map[string]int{"transA": b2i(op.transA), "transB": b2i(op.transB)}, 0
}
func (op reluOp) describe() (string, map[string]int, float64)         { return "relu", nil, 0 }
func (op reluMaskOp) describe() (string, map[string]int, float64)     { return "relumask", nil, 0 }
func (op stopGradientOp) describe() (string, map[string]int, float64) { return "stopgradient", nil, 0 }
func (op logSoftmaxOp) describe() (string, map[string]int, float64)   { return "logsoftmax", nil, 0 }
func (op transposeLastOp) describe() (string, map[string]int, float64) {
	return "transposelast", nil, 0
}
func (op sumRowsOp) describe() (string, map[string]int, float64) { return "sumrows", nil, 0 }
func (op scaleChannelsOp) describe() (string, map[string]int, float64) {
	return "scalechannels", nil, 0
}
func (op addChannelsOp) describe() (string, map[string]int, float64) { return "addchannels", nil, 0 }
func (op dotChannelsOp) describe() (string, map[string]int, float64) { return "dotchannels", nil, 0 }
func (op normBackOp) describe() (string, map[string]int, float64)    { return "normback", nil, 0 }
func (op bnBackOp) describe() (string, map[string]int, float64)      { return "bnback", nil, 0 }
func (op affineChannelsOp) describe() (string, map[string]int, float64) {
	return "affinechannels", nil, 0
}
func (op normalizeOp) describe() (string, map[string]int, float64) { return "normalize", nil, op.eps }
func (op invStdOp) describe() (string, map[string]int, float64)    { return "invstd", nil, op.eps }
func (op pickOp) describe() (string, map[string]int, float64) {
	return "pick", map[string]int{"classes": op.classes}, 0
}
func (op scatterOp) describe() (string, map[string]int, float64) {
	return "scatter", map[string]int{"classes": op.classes}, 0
}
func (op im2colOp) describe() (string, map[string]int, float64) {
	return "im2col", convAttr(op.image, op.win), 0
}
func (op col2imOp) describe() (string, map[string]int, float64) {
	return "col2im", convAttr(op.image, op.win), 0
}
func (op poolArgMaxOp) describe() (string, map[string]int, float64) {
	return "poolargmax", map[string]int{"n": op.n, "h": op.h, "w": op.w, "c": op.c, "k": op.k}, 0
}
func (op gatherOp) describe() (string, map[string]int, float64) {
	return "gather", map[string]int{"dims": op.dims}, 0
}
func (op scatterAddOp) describe() (string, map[string]int, float64) {
	return "scatteradd", map[string]int{"dims": op.dims}, 0
}

func convAttr(im image, win window) map[string]int {
	return map[string]int{"n": im.n, "h": im.h, "w": im.w, "c": im.c, "k": win.k, "stride": win.stride, "pad": win.pad}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
