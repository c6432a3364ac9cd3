// Command bare is the reference of the hot-topic benchmark
// (scripts/hot-topic.sh): a net/http server whose POST handler reads the
// body and answers a fixed JSON body, the most any HTTP publish endpoint on
// net/http can do on this machine. topicast's single-publish throughput is
// compared with it in one run.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	flag.Parse()
	answer := []byte(`{"topic":"hot","epoch":"e","seq":1}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
