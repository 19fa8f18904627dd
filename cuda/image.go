package cuda

import "github.com/medusa-ml/medusa/graph"

// imageKernel prepares the ops of convolutional networks: im2col, col2im,
// transposelast, pooling, gather and scatter-add, batch normalisation's
// ops, sumrows, slice and concat.
func (d *Device) imageKernel(op graph.OpSpec) (graph.Kernel, error) {
	return nil, unsupported(op, "no kernel")
}
