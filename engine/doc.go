// Package engine is gnomon's time-keeping brain. It is sans-IO: every entry
// point is handed the time and the bytes it needs and gives back decisions.
// No package below engine/ opens a socket or a file, makes a syscall, starts a
// goroutine or reads the wall clock; the daemon in service/ does all of that
// and the simulator in engine/sim drives the same code thousands of times
// faster than real time.
//
// The packages below engine/ are importable, but they are not a stable API.
package engine
