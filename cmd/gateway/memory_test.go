package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/conn/conntest"
)

// peakAnonBound is what TestMemoryUnderAttack allows the gateway's peak
// resident memory to exceed the size of its database file by (bbolt maps
// the file, and the pages a read touches count as resident). The attacks
// held 700 MB and more before their memory was bounded.
const peakAnonBound = 192 << 20

// TestMemoryUnderAttack runs the gateway binary, replays the attacks that
// once grew its memory without bound, and checks its peak resident set
// (VmHWM, a true peak kept by the kernel) against peakAnonBound. The
// gateway takes actions of up to 1 MB, as an operator may allow, so that
// its log holds the largest events a client can store.
func TestMemoryUnderAttack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := buildGateway(t)
	db := filepath.Join(dir, "gateway.db")
	p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-db", db, "-max-action-bytes", "1048576")
	base := p.URL + "/v1/conversations"
	// The bodies of 1 MB, made once: under -race every copy of a large
	// buffer costs milliseconds, as reading a whole answer into a
	// growing one does (post reads only its head).
	mb := `"` + strings.Repeat("x", 1_000_000) + `"`
	blob, bigTitle := `{"name":"blob","input":`+mb+`}`, `{"title":`+mb+`}`
	// post does not check the exchange against protocol/openapi.yaml as
	// conntest.Do does: validating each 1 MB request and its 1 MB answer
	// under -race took a second a post, four fifths of this test's time,
	// and the small exchanges of the other tests keep the document true.
	postErr := func(path, body string, want int) error {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			return fmt.Errorf("POST %s: %w", path, err)
		}
		head := make([]byte, 200)
		n, _ := io.ReadFull(resp.Body, head)
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != want {
			return fmt.Errorf("POST %s: %d %s %v, want %d", path, resp.StatusCode, head[:n], err, want)
		}
		return nil
	}
	post := func(path, body string, want int) {
		t.Helper()
		if err := postErr(path, body, want); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	phase := func(name string) {
		t.Helper()
		hwm, rss := procStatus(t, p.cmd.Process.Pid, "VmHWM"), procStatus(t, p.cmd.Process.Pid, "VmRSS")
		t.Logf("%-48s peak %4d MiB, now %4d MiB, database %4d MiB (at %4.1f s)", name+":", hwm>>20, rss>>20, fileSize(t, db)>>20, time.Since(start).Seconds())
	}
	phase("started")

	// 150 actions of 1 MB, then one GET of all of them (150 MB). They
	// are posted four at a time, which takes half as long as one at a
	// time; the peak of this phase stays well under the later ones'.
	post("", `{"conversation":"big"}`, 201)
	var wg sync.WaitGroup
	actions := make(chan struct{}, 150)
	for range 150 {
		actions <- struct{}{}
	}
	close(actions)
	for range 4 {
		wg.Go(func() {
			for range actions {
				if err := postErr("/big/actions", blob, 201); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	phase("150 actions of 1 MB stored")
	resp, err := http.Get(base + "/big/events?after=0&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n < 150_000_000 {
		t.Fatalf("GET events: %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	phase("GET …/events of 150 MB")

	// Three connections replay the whole log and stop reading after the
	// first event.
	for i := range 3 {
		ws, _, err := websocket.Dial(conntest.Deadline(t), strings.Replace(p.URL, "http", "ws", 1)+"/v1/ws?conversation=big&after=0", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		ws.SetReadLimit(2 << 20)
		for j := range 2 { // subscribed, then the first event
			if _, _, err := ws.Read(conntest.Deadline(t)); err != nil {
				t.Fatalf("connection %d, frame %d: %v", i, j, err)
			}
		}
	}
	phase("3 replays of 150 MB that stopped reading")

	// Large titles, refused; the list.
	for range 40 {
		post("", bigTitle, 413)
	}
	if status, _ := conntest.Do(t, "GET", base, ""); status != 200 {
		t.Fatalf("list: %d", status)
	}
	phase("40 creates with 1 MB titles, then list")

	// Creates and actions in a burst (with -auth none, no per-user budget).
	for i := range 60 {
		post("", fmt.Sprintf(`{"conversation":"c%d"}`, i), 201)
		post(fmt.Sprintf("/c%d/actions", i), blob, 201)
	}
	phase("60 creates and 60 actions of 1 MB")

	hwm, dbSize := procStatus(t, p.cmd.Process.Pid, "VmHWM"), fileSize(t, db)
	if hwm-dbSize > peakAnonBound {
		t.Errorf("peak resident memory %d MiB, %d MiB beyond the %d MiB database; want at most %d MiB beyond",
			hwm>>20, (hwm-dbSize)>>20, dbSize>>20, peakAnonBound>>20)
	}
}

// procStatus returns a size field of /proc/PID/status in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to measure memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// fileSize returns the size of the file at path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
