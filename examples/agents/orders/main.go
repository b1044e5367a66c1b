// Command orders is an example HTTP tool for the gateway's agents (see
// examples/agents/agents.yaml): POST /lookup with {"id": "1002"} answers
// that order as JSON, or 404 for an id it does not know. It shows what a
// tool gets from the gateway: the model's input as the body and the
// caller's user id in X-Gateway-User.
//
//	go run ./examples/agents/orders -addr 127.0.0.1:7002
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7002", "the address to serve on")
	flag.Parse()
	log.Printf("orders: serving POST http://%s/lookup", *addr)
	srv := &http.Server{Addr: *addr, Handler: handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// order is what the tool answers.
type order struct {
	ID     string   `json:"id"`
	Status string   `json:"status"`
	Items  []string `json:"items"`
	// Customer is the gateway user the lookup was made for.
	Customer string `json:"customer"`
}

// orders are the example's orders, by id.
var orders = map[string]order{
	"1001": {ID: "1001", Status: "delivered", Items: []string{"kettle"}},
	"1002": {ID: "1002", Status: "shipped, arriving tomorrow", Items: []string{"teapot", "2 cups"}},
	"1003": {ID: "1003", Status: "waiting for payment", Items: []string{"tea, 500 g"}},
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /lookup", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
			http.Error(w, "want a JSON body with an id", http.StatusBadRequest)
			return
		}
		o, ok := orders[in.ID]
		if !ok {
			http.Error(w, fmt.Sprintf("no order with id %q", in.ID), http.StatusNotFound)
			return
		}
		o.Customer = r.Header.Get("X-Gateway-User")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(o)
	})
	return mux
}
