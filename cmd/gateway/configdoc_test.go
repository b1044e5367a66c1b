package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/flagenv"
)

// update rewrites docs/CONFIGURATION.md from the flags instead of
// comparing it with them.
var update = flag.Bool("update", false, "rewrite docs/CONFIGURATION.md from the gateway's flags")

// configDoc is where the generated flag reference lives.
const configDoc = "../../docs/CONFIGURATION.md"

// regenerate is the command that rewrites configDoc.
const regenerate = "go test ./cmd/gateway -run TestConfigurationDoc -update"

// TestConfigurationDoc keeps docs/CONFIGURATION.md equal to what the flag
// definitions in config.go generate, so that a new or changed flag cannot
// go undocumented.
func TestConfigurationDoc(t *testing.T) {
	want := configurationDoc()
	if *update {
		if err := os.WriteFile(configDoc, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatalf("%v\nCreate it with: %s", err, regenerate)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/CONFIGURATION.md does not match the flags in cmd/gateway/config.go "+
			"(first difference at line %d).\nRegenerate it from the repository root with:\n\n\t%s\n\n"+
			"and commit the result.", firstDiffLine(got, want), regenerate)
	}
}

// configurationDoc renders the flag reference: every flag of flagSet in
// name order, with its environment twin, default and help text.
func configurationDoc() []byte {
	var c config
	fs := c.flagSet(io.Discard)
	var b bytes.Buffer
	b.WriteString(configHead)
	b.WriteString("| flag | environment | default | meaning |\n|---|---|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		def := "—"
		if f.DefValue != "" {
			def = "`" + f.DefValue + "`"
		}
		fmt.Fprintf(&b, "| `-%s` | `%s` | %s | %s |\n", f.Name, flagenv.Name("GATEWAY", f.Name), def,
			strings.ReplaceAll(f.Usage, "|", `\|`))
	})
	fmt.Fprintf(&b, "| — | `%s` | — | the HS256 secret of `-auth jwt`, at least 32 bytes; no flag, so that it never shows in `ps` or a shell history |\n", secretEnv)
	b.WriteString(configTail)
	return b.Bytes()
}

// firstDiffLine returns the 1-based number of the first line where a and
// b differ.
func firstDiffLine(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

const configHead = `# Configuration

<!-- Generated from the flag definitions in cmd/gateway/config.go; do not
edit by hand. After adding or changing a flag, run from the repository root:
    ` + regenerate + `
-->

Every flag has an environment twin: ` + "`-send-queue 64`" + ` and
` + "`GATEWAY_SEND_QUEUE=64`" + ` do the same; a flag given on the command line wins
over its twin. ` + "`gateway -h`" + ` prints the same list. Where the help text
says "(0: …)", a zero value means the default it names.

`

const configTail = `
Negative limits are refused at start, as are ` + "`-auth jwt`" + ` without a secret or
a JWKS, ` + "`-jwt-jwks`" + `, ` + "`-jwt-issuer`" + ` or ` + "`-jwt-audience`" + ` without
` + "`-auth jwt`" + `, ` + "`-provider bedrock`" + ` without ` + "`-model`" + `, a ` + "`-temperature`" + ` above 1,
a burst under 1 with its rate set, ` + "`-nats-creds`" + `, ` + "`-node`" + ` or a
` + "`-nats-replicas`" + ` or ` + "`-nats-lease`" + ` other than its default without ` + "`-nats`" + `,
` + "`-nats-replicas`" + ` outside 1 to 5, a ` + "`-nats-lease`" + ` under 1s, with ` + "`-nats`" + ` a
` + "`-max-title-bytes`" + ` over 8 KiB or a ` + "`-max-queued-turns`" + ` over 64 (each record
carries both, and a ` + "`turn_end`" + ` must fit one NATS message), a malformed
` + "`-allowed-origins`" + ` pattern (such as an unclosed ` + "`[`" + `), and a
` + "`-trusted-proxies`" + ` entry that is not a CIDR or an address, or has bits set
past its prefix length (` + "`10.0.0.1/8`" + `).

With ` + "`-auth none`" + ` every caller is the same user, so the per-user limits
(` + "`-max-conns-per-user`" + `, ` + "`-send-rate`" + `) are off in that mode, and so is
` + "`-auth-fail-rate`" + `, since nothing is authenticated. The per-IP
limits count the TCP peer, so a load generator on one machine shares one
budget: start such a gateway with ` + "`-upgrade-rate 0 -auth-fail-rate 0`" + `.
Behind a reverse proxy or load balancer, list its addresses in
` + "`-trusted-proxies`" + ` so that each client counts, and is named in the request
log, by the address the proxy puts in ` + "`X-Forwarded-For`" + ` (see [OPERATIONS.md](OPERATIONS.md#behind-a-tls-proxy)).
What each limit answers with is in
[PROTOCOL.md](../PROTOCOL.md#limits) and [SECURITY.md](SECURITY.md).
`
