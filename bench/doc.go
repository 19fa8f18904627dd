// Package bench holds medusa's performance suites, run with
//
//	go test -bench . -benchmem ./bench
//
// Results and the figures of the references they are compared with are in
// README.md beside this file.
package bench
