// A Go HTTP target with net/http/pprof and a known hot function, for the profiler's tests.
// GET /work spends most of its CPU in hotSum and a little in coldSum. Prints its port.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

var sink uint64

//go:noinline
func hotSum(n int) uint64 {
	var s uint64
	for i := 0; i < n; i++ {
		s += uint64(i*i) ^ (s >> 3)
	}
	return s
}

//go:noinline
func coldSum(n int) uint64 {
	var s uint64
	for i := 0; i < n; i++ {
		s += uint64(i) ^ (s >> 5)
	}
	return s
}

func work(w http.ResponseWriter, r *http.Request) {
	sink += hotSum(3_000_000) + coldSum(300_000)
	fmt.Fprintf(w, "%d\n", sink&1)
}

func main() {
	http.HandleFunc("/work", work)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, nil)
}
