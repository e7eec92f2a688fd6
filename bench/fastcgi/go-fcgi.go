// The benchmark application on Go's net/http/fcgi (bench/fastcgi.js); same
// logic as tsgi-app.js. bench/fastcgi.js builds it with `go build` if go is
// installed. usage: go-fcgi 127.0.0.1:<port>
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"strconv"
	"time"
)

const hello = "Hello, world!\n"

func handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		if delay, err := strconv.Atoi(r.URL.Query().Get("delay")); err == nil && delay > 0 {
			time.Sleep(time.Duration(delay) * time.Millisecond)
		}
		hash := sha256.New()
		length, err := io.Copy(hash, r.Body)
		if err != nil {
			log.Printf("upload failed: %v", err)
			http.Error(w, "upload failed", http.StatusBadRequest)
			return
		}
		body := fmt.Sprintf("%d %s\n", length, hex.EncodeToString(hash.Sum(nil)))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(hello)))
	io.WriteString(w, hello)
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: go-fcgi host:port")
	}
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(fcgi.Serve(listener, http.HandlerFunc(handle)))
}
