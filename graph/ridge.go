package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/mat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RidgeSolve returns Z = (K + λI)⁻¹·Y for each index of the leading axis:
// the dual solution of ridge regression on a Gram matrix, as the R2D2
// head of Bertinetto et al. (2019) takes it. K [B, n, n] must be
// symmetric positive semi-definite (a Gram matrix X·Xᵀ), lambda a
// one-element tensor [1] holding λ > 0, and Y [B, n, m]; Z is [B, n, m].
// Each system is solved by a Cholesky factorisation in float64; one that
// is not positive definite is an error when the graph runs.
//
// With G the gradient of Z, the derivatives are RidgeSolve(K, λ, G) for
// Y, −RidgeSolve(K, λ, G)·Zᵀ for K and −Σ RidgeSolve(K, λ, G)⊙Z for λ,
// built of RidgeSolve and BatchedMatMul: it differentiates any number of
// times. The solve reads K's upper triangle, and K's derivative holds for
// symmetric changes of K, as those of a Gram matrix X·Xᵀ are: build K so.
func RidgeSolve(k, lambda, y *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "RidgeSolve")
	ks, ls, ys := k.Shape(), lambda.Shape(), y.Shape()
	if k.Dims() != 3 || ks[1] != ks[2] || y.Dims() != 3 || ys[0] != ks[0] || ys[1] != ks[1] || ls.TotalSize() != 1 || lambda.Dims() != 1 {
		return nil, &ShapeError{Op: "RidgeSolve", Want: "K [B, n, n], lambda [1] and Y [B, n, m]", Got: fmt.Sprintf("%v, %v and %v", ks, ls, ys)}
	}
	return apply(ridgeOp{}, k, lambda, y)
}

type ridgeOp struct{}

func (op ridgeOp) arity() int { return 3 }
func (op ridgeOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(1, a), tensorType(3, a), tensorType(3, a))
}
func (op ridgeOp) outShape(in ...tensor.Shape) (tensor.Shape, error) { return in[2].Clone(), nil }
func (op ridgeOp) String() string                                    { return "RidgeSolve" }
func (op ridgeOp) describe() (string, map[string]int, float64)       { return "ridgesolve", nil, 0 }
func (op ridgeOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	switch in[0].Dtype() {
	case tensor.Float64:
		return ridgeRun[float64](pre, in)
	case tensor.Float32:
		return ridgeRun[float32](pre, in)
	}
	return nil, fmt.Errorf("graph: %v: unsupported dtype %v", op, in[0].Dtype())
}

func ridgeRun[T float](pre G.Value, in []G.Value) (G.Value, error) {
	k, ks, err := floats[T](in[0])
	if err != nil {
		return nil, err
	}
	l, _, err := floats[T](in[1])
	if err != nil {
		return nil, fmt.Errorf("graph: RidgeSolve: mixed data: %v", err)
	}
	y, ys, err := floats[T](in[2])
	if err != nil {
		return nil, fmt.Errorf("graph: RidgeSolve: mixed data: %v", err)
	}
	if len(ks) != 3 || len(ys) != 3 || len(l) != 1 || ks[1] != ks[2] || ys[0] != ks[0] || ys[1] != ks[1] {
		return nil, &ShapeError{Op: "RidgeSolve", Want: "K [B, n, n], lambda [1] and Y [B, n, m]", Got: fmt.Sprintf("%v and %v", ks, ys)}
	}
	lam := float64(l[0])
	if !(lam > 0) {
		return nil, fmt.Errorf("graph: RidgeSolve: lambda %v, want positive", lam)
	}
	b, n, m := ks[0], ks[1], ys[2]
	out := reuse[T](pre, b*n*m)
	a := mat.NewSymDense(n, nil)
	rhs := mat.NewDense(n, m, nil)
	var z mat.Dense
	var ch mat.Cholesky
	for t := range b {
		for i := range n {
			for j := i; j < n; j++ {
				v := float64(k[(t*n+i)*n+j])
				if i == j {
					v += lam
				}
				a.SetSym(i, j, v)
			}
			for j := range m {
				rhs.Set(i, j, float64(y[(t*n+i)*m+j]))
			}
		}
		if !ch.Factorize(a) {
			return nil, fmt.Errorf("graph: RidgeSolve: K + λI of system %d is not positive definite", t)
		}
		if err := ch.SolveTo(&z, rhs); err != nil {
			return nil, fmt.Errorf("graph: RidgeSolve: system %d: %v", t, err)
		}
		for i := range n {
			for j := range m {
				out[(t*n+i)*m+j] = T(z.At(i, j))
			}
		}
	}
	return wrap(pre, out, ys), nil
}

func (op ridgeOp) diffWRT() []bool { return []bool{true, true, true} }
func (op ridgeOp) symDiff(in G.Nodes, z, grad *G.Node) (G.Nodes, error) {
	gy, err := RidgeSolve(in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	gk, err := BatchedMatMul(gy, z, false, true)
	if err != nil {
		return nil, err
	}
	if gk, err = Scale(gk, -1); err != nil {
		return nil, err
	}
	prod, err := G.HadamardProd(gy, z)
	if err != nil {
		return nil, err
	}
	gl, err := SumAll(prod)
	if err != nil {
		return nil, err
	}
	if gl, err = G.Reshape(gl, tensor.Shape{1}); err != nil {
		return nil, err
	}
	if gl, err = Scale(gl, -1); err != nil {
		return nil, err
	}
	return G.Nodes{gk, gl, gy}, nil
}
