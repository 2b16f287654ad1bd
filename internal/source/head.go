package source

import (
	"context"
	"fmt"
	"net/http"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/egress"
)

// Info describes a file without its content.
type Info struct {
	// ETag the server gave; empty when it gave none.
	ETag string
	// Size in bytes; -1 when the server did not say.
	Size int64
}

// Head asks the server of an http source for the ETag and size of the file
// with a HEAD request, with the source's credentials and CA bundle, without
// retries. ctx bounds it.
func Head(ctx context.Context, src *v1alpha1.HTTPSource, opts Options) (Info, error) {
	client, err := httpClient(ctx, src, opts)
	if err != nil {
		return Info{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, src.URL, nil)
	if err != nil {
		return Info{}, fmt.Errorf("source.http.url: %w", err)
	}
	if err := authorize(ctx, req, src, opts.Secrets); err != nil {
		return Info{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Info{}, fmt.Errorf("source.http: %w", egress.Redact(err))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Info{}, fmt.Errorf("source.http: HEAD: %s", resp.Status)
	}
	return Info{ETag: resp.Header.Get("ETag"), Size: resp.ContentLength}, nil
}
