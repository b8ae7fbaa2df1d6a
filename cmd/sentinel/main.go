package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	promversion "github.com/prometheus/common/version"
)

// Set at build time: -ldflags "-X main.version=v0.1.0 -X main.commit=abc123".
var (
	version = "dev"
	commit  = ""
)

const usage = `usage: sentinel <command> [flags]

commands:
  run                      the daemon (see sentinel run -h)
  demo                     synthetic control-plane traffic with a latency incident; prints the alerts
  check config FILE        validate a config file and the rule files it names
  check rules FILE...      validate rule files
  test rules FILE...       run rule unit tests
  version                  print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runCommand(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// runCommand dispatches a command line and returns the exit status.
func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "run":
		return runDaemon(ctx, rest, stdout, stderr)
	case cmd == "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case cmd == "check" && len(rest) > 0 && rest[0] == "config":
		return checkConfig(rest[1:], stdout, stderr)
	case cmd == "check" && len(rest) > 0 && rest[0] == "rules":
		return checkRules(rest[1:], stdout, stderr)
	case cmd == "test" && len(rest) > 0 && rest[0] == "rules":
		return testRules(ctx, rest[1:], stdout, stderr)
	case cmd == "check" || cmd == "test":
		fmt.Fprintf(stderr, "sentinel %s: say what to %s: config FILE or rules FILE...\n\n%s", cmd, cmd, usage)
		return 2
	case cmd == "version" || cmd == "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sentinel: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// versionString is Prometheus's version output for sentinel, from the
// build's stamps (or, unstamped, the module's VCS revision).
func versionString() string {
	return promversion.Print("sentinel")
}

// init hands the -ldflags stamps to prometheus/common/version, which
// `sentinel version`, the start-up log line and sentinel_build_info read,
// as Prometheus's own do.
func init() {
	promversion.Version = version
	if commit != "" {
		promversion.Revision = commit
	}
}
