package protocol_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// FuzzDecodeServerFrame checks, for any input, that the decoders a client
// runs on the gateway's frames (ServerFrame's and Event's UnmarshalJSON)
// do not panic, and that an event they decode encodes to a frame that
// decodes to the same event. The seeds are the golden frames and
// testdata/fuzz.
func FuzzDecodeServerFrame(f *testing.F) {
	golden, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range golden {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var frame protocol.ServerFrame
		if json.Unmarshal(data, &frame) == nil {
			frame.StoredMessage()
			frame.ErrorMessage()
		}
		var ev protocol.Event
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		once, err := json.Marshal(&ev)
		if err != nil {
			t.Fatalf("encoding the event decoded from %q: %v", data, err)
		}
		var again protocol.Event
		if err := json.Unmarshal(once, &again); err != nil {
			t.Fatalf("decoding %s, the encoding of the event decoded from %q: %v", once, data, err)
		}
		twice, err := json.Marshal(&again)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("event decoded from %q encodes to\n%s\nthen to\n%s (%v)", data, once, twice, err)
		}
	})
}
