// Command kubectl-usersync is the kubectl plugin of user-import-operator:
// `kubectl usersync status|report|approve|import|cancel|run-now|codes`.
// It honours --kubeconfig, --context, -n and -A as kubectl does.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/internal/plugin"
	"github.com/userimport/user-import-operator/internal/scheme"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := command().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func command() *cobra.Command {
	var kubeconfig, kubeContext, namespace string
	var all bool
	p := &plugin.Plugin{In: os.Stdin, Out: os.Stdout, Terminal: isTerminal(os.Stdout)}
	connect := func(*cobra.Command, []string) error {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = kubeconfig
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
		cfg, err := cc.ClientConfig()
		if err != nil {
			return err
		}
		p.Namespace = namespace
		if p.Namespace == "" {
			if p.Namespace, _, err = cc.Namespace(); err != nil {
				return err
			}
		}
		p.AllNamespaces = all
		p.Client, err = client.New(cfg, client.Options{Scheme: scheme.New()})
		return err
	}
	root := &cobra.Command{
		Use:               "kubectl-usersync",
		Short:             "Follow and drive UserImports and ImportSchedules",
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: connect,
	}
	fl := root.PersistentFlags()
	fl.StringVar(&kubeconfig, "kubeconfig", "", "path to the kubeconfig file")
	fl.StringVar(&kubeContext, "context", "", "the kubeconfig context to use")
	fl.StringVarP(&namespace, "namespace", "n", "", "the namespace (default: the context's)")
	fl.BoolVarP(&all, "all-namespaces", "A", false, "status without a name: list every namespace")

	one := func(use, short string, run func(ctx context.Context, name string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error { return run(c.Context(), args[0]) }}
	}
	status := &cobra.Command{Use: "status [IMPORT]", Short: "an import's phase, progress, counts, queue position and conditions; without a name, the list",
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return p.Status(c.Context(), name)
		}}
	var action, output string
	report := one("report IMPORT", "the rows the preview plans or the import wrote, with the errors by line", func(ctx context.Context, name string) error {
		return p.Report(ctx, name, action, output)
	})
	report.Flags().StringVar(&action, "action", "", "only rows of this action: create, update, deactivate, delete or error")
	report.Flags().StringVarP(&output, "output", "o", "table", "table, csv or json")
	var yes bool
	approve := one("approve IMPORT", "approve exactly the deactivations and deletions the preview counted", func(ctx context.Context, name string) error {
		return p.Approve(ctx, name, yes)
	})
	approve.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	runNow := one("run-now SCHEDULE", "start one import of a schedule now", func(ctx context.Context, name string) error {
		return p.RunNow(ctx, name, time.Now().UTC().Format(time.RFC3339))
	})
	var yesImport bool
	imp := one("import IMPORT", "let an import write (action Import); asks first when its preview plans deprovisions", func(ctx context.Context, name string) error {
		return p.Import(ctx, name, yesImport)
	})
	imp.Flags().BoolVarP(&yesImport, "yes", "y", false, "do not ask")
	var show bool
	var codesFile string
	codes := one("codes IMPORT", "print the import's recovery codes as CSV (to a terminal only with --show), or write them to a file", func(ctx context.Context, name string) error {
		return p.Codes(ctx, name, show, codesFile)
	})
	codes.Flags().BoolVar(&show, "show", false, "print the codes, which are passwords, to a terminal")
	codes.Flags().StringVarP(&codesFile, "output", "o", "", "write the codes to this file, created with mode 0600")
	root.AddCommand(status, report, approve, runNow, imp,
		one("cancel IMPORT", "cancel an import that has not finished", p.Cancel),
		codes)
	return root
}

// isTerminal tells whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
