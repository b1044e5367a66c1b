package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Builtin is the example the gateway runs with when it has no agents
// file: an agent "demo" whose tools come from "example", an MCP server
// inside the gateway (a real MCP server over in-memory transports):
//
//   - example__clock: the current time, in UTC or an IANA time zone;
//   - example__calc: a + b, a - b, a * b or a / b;
//   - example__countdown: counts down some seconds (1 to 10), reporting
//     progress each second; it shows tool_progress and cancel.
//
// It is an example, not a feature: give the gateway an agents file to
// define real agents.
func Builtin() *Config {
	return &Config{
		MCPServers: []MCPServer{{Name: "example", inProcess: exampleServer()}},
		Agents: []AgentConfig{{
			Name:        "demo",
			Description: "The built-in example agent: tells the time, does sums, counts down (example tools in the gateway).",
			System: "You are {{agent}}, the gateway's built-in example agent, talking with {{user}}. " +
				"Use your tools to tell the time, to calculate and to count down when asked. Be brief.",
			Tools: []string{"example"},
		}},
	}
}

type clockIn struct {
	TimeZone string `json:"timezone,omitempty" jsonschema:"an IANA time zone such as Europe/Paris; default UTC"`
}

type clockOut struct {
	Time     string `json:"time"`
	TimeZone string `json:"timezone"`
}

type calcIn struct {
	A  float64 `json:"a" jsonschema:"the first operand"`
	Op string  `json:"op" jsonschema:"one of + - * /"`
	B  float64 `json:"b" jsonschema:"the second operand"`
}

type calcOut struct {
	Result float64 `json:"result"`
}

type countdownIn struct {
	Seconds int `json:"seconds" jsonschema:"how many seconds to count down, 1 to 10"`
}

type countdownOut struct {
	Done bool `json:"done"`
}

// exampleServer is Builtin's MCP server.
func exampleServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "example", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "clock", Description: "The current date and time, in UTC or in the IANA time zone given as timezone."},
		func(_ context.Context, _ *mcp.CallToolRequest, in clockIn) (*mcp.CallToolResult, clockOut, error) {
			if in.TimeZone == "" {
				in.TimeZone = "UTC"
			}
			loc, err := time.LoadLocation(in.TimeZone)
			if err != nil {
				return nil, clockOut{}, fmt.Errorf("unknown time zone %q", in.TimeZone)
			}
			return nil, clockOut{Time: time.Now().In(loc).Format(time.RFC3339), TimeZone: in.TimeZone}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "calc", Description: "Calculates a + b, a - b, a * b or a / b."},
		func(_ context.Context, _ *mcp.CallToolRequest, in calcIn) (*mcp.CallToolResult, calcOut, error) {
			switch in.Op {
			case "+":
				return nil, calcOut{in.A + in.B}, nil
			case "-":
				return nil, calcOut{in.A - in.B}, nil
			case "*":
				return nil, calcOut{in.A * in.B}, nil
			case "/":
				if in.B == 0 {
					return nil, calcOut{}, errors.New("division by zero")
				}
				return nil, calcOut{in.A / in.B}, nil
			}
			return nil, calcOut{}, fmt.Errorf("unknown op %q: want + - * or /", in.Op)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "countdown", Description: "Counts down some seconds, reporting progress each second."},
		func(ctx context.Context, req *mcp.CallToolRequest, in countdownIn) (*mcp.CallToolResult, countdownOut, error) {
			if in.Seconds < 1 || in.Seconds > 10 {
				return nil, countdownOut{}, errors.New("seconds must be 1 to 10")
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := range in.Seconds {
				notify(ctx, req, float64(i), float64(in.Seconds), fmt.Sprintf("%d…", in.Seconds-i))
				select {
				case <-tick.C:
				case <-ctx.Done():
					return nil, countdownOut{}, ctx.Err()
				}
			}
			notify(ctx, req, float64(in.Seconds), float64(in.Seconds), "done")
			return nil, countdownOut{Done: true}, nil
		})
	return s
}

// notify sends a progress notification for req, if its caller asked for
// them (with a progress token).
func notify(ctx context.Context, req *mcp.CallToolRequest, progress, total float64, message string) {
	if token := req.Params.GetProgressToken(); token != nil {
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token,
			Progress: progress, Total: total, Message: message})
	}
}
