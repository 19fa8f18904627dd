package cuda

// imageOpCases are the cases of TestOpsOnDevice for the ops of image.go.
func imageOpCases() []opCase { return nil }
