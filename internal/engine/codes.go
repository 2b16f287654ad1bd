package engine

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/recoverycode"
)

// Recovery codes: a change that gives its user a code carries the code's
// hash in CodeConfig.Attribute, written with the user itself. The plain
// code is recorded first (CodeRecorder.Record returns once it is stored),
// and only then is the batch written: a worker killed in between has
// recorded a code whose hash the directory may lack, never the reverse.
// A resumed worker derives the same code for the same user (the
// Generator's key is the import's), so replaying the batch writes a hash
// of the code already recorded.

// CodeConfig says which users a run gives a recovery code, and how the
// directory stores it.
type CodeConfig struct {
	// Policy is ForNewUsers, WhereMissing or All.
	Policy v1alpha1.RecoveryCodePolicy
	// Column, when set, is the file's column holding imported codes; a
	// row whose cell is empty gets a generated code.
	Column string
	// Attribute receives the hash; HeldAttribute, read for WhereMissing,
	// tells by having a value that the directory holds a code.
	Attribute, HeldAttribute string
	// ExpiresAttribute, when set, receives Expires (RFC 3339).
	ExpiresAttribute string
	Expires          time.Time
	// ResetAttribute, when set, receives ResetValue ("TRUE" when empty)
	// with each code: the directory makes the user change it at first
	// use.
	ResetAttribute, ResetValue string
	// Generator derives generated codes; Hasher hashes every code.
	// Neither is used in a dry run.
	Generator *recoverycode.Generator
	Hasher    *recoverycode.Hasher
	// Recorder keeps the plain codes; not used in a dry run.
	Recorder CodeRecorder
}

// IssuedCode is a code given to a user.
type IssuedCode struct {
	Identity, Code string
}

// CodeRecorder keeps the plain codes an import gives out.
type CodeRecorder interface {
	// Record stores codes; it returns once they are stored for good.
	// A code recorded again for the same identity replaces the first.
	Record(ctx context.Context, codes []IssuedCode) error
	// Forget drops the codes of users whose write the directory refused;
	// they are dropped from the store with the next Record or Close.
	Forget(identities []string)
	// Code returns the code recorded for identity.
	Code(identity string) (string, bool)
}

// codeFor is the code a change of a batch gives its user.
type codeFor struct {
	change   int
	identity string
	code     string
}

// codeColumn finds the column of imported codes; -1 without one.
func (r *run) codeColumn() (int, error) {
	cc := r.cfg.Codes
	if cc == nil || cc.Column == "" {
		return -1, nil
	}
	for _, m := range r.cfg.Mapping {
		if m.Column == cc.Column {
			return -1, failure.Stall(v1alpha1.ReasonInvalidMapping,
				fmt.Errorf("recoveryCodes.column: column %q is also mapped (to %s); a code must never be written in plain text", cc.Column, m.Attribute))
		}
	}
	for i, h := range r.header {
		if h == cc.Column {
			return i, nil
		}
	}
	return -1, failure.Stall(v1alpha1.ReasonInvalidMapping, fmt.Errorf("recoveryCodes.column: the file has no column %q", cc.Column))
}

// wantsCode tells whether a user gets a code: isNew when the import
// creates it, held when the directory holds a code for it.
func (r *run) wantsCode(isNew, held bool) bool {
	cc := r.cfg.Codes
	if cc == nil {
		return false
	}
	switch cc.Policy {
	case v1alpha1.CodesForNewUsers:
		return isNew
	case v1alpha1.CodesWhereMissing:
		return isNew || !held
	case v1alpha1.CodesAll:
		return true
	}
	return false
}

// importedCode returns the row's code from the codes column, copied out
// of its chunk ("" when the row has none), or a message naming why it is
// refused, never the code.
func (r *run) importedCode(m *mappedRow) (string, string) {
	if r.codeCol < 0 || r.codeCol >= len(m.rec.Fields) {
		return "", ""
	}
	v := strings.TrimSpace(m.rec.Fields[r.codeCol])
	if v == "" {
		return "", ""
	}
	if err := recoverycode.Check(v); err != nil {
		return "", "recoveryCodes.column " + r.cfg.Codes.Column + ": the code is " + err.Error()
	}
	return strings.Clone(v), ""
}

// codeOf is the code of a user that gets one: imported, or derived from
// the identity. A dry run derives nothing.
func (r *run) codeOf(identity, imported string, dry bool) string {
	if imported != "" || dry {
		return imported
	}
	return r.cfg.Codes.Generator.Code(identity)
}

// giveCode adds to change i of b the code of its user.
func (b *batch) giveCode(i int, code string) {
	b.codes = append(b.codes, codeFor{change: i, identity: b.changes[i].Identity, code: code})
}

// recordCodes records the codes of a batch. A full import starts it when
// the batch is sent, so that the codes are stored while earlier batches
// are written: the worker waits for it (b.recorded) only before it hashes
// the codes and writes the batch. Hashing stays with the workers, so that
// an expensive hash runs Concurrency at a time, in file order.
func (p *pass) recordCodes(ctx context.Context, b *batch) error {
	issued := make([]IssuedCode, len(b.codes))
	for i, c := range b.codes {
		issued[i] = IssuedCode{Identity: c.identity, Code: c.code}
	}
	if err := p.r.cfg.Codes.Recorder.Record(ctx, issued); err != nil {
		return fmt.Errorf("recording recovery codes: %w", err)
	}
	return nil
}

// startRecording starts recordCodes for a batch about to be sent.
func (p *pass) startRecording(ctx context.Context, b *batch) {
	if p.dry || len(b.codes) == 0 || b.recorded != nil {
		return
	}
	done := make(chan error, 1)
	b.recorded = done
	go func() { done <- p.recordCodes(ctx, b) }()
}

// abandon forgets the codes recorded for a batch that is not written.
func (p *pass) abandon(b *batch) {
	if b.recorded == nil {
		return
	}
	if err := <-b.recorded; err != nil {
		return
	}
	ids := make([]string, len(b.codes))
	for i, c := range b.codes {
		ids[i] = c.identity
	}
	p.r.cfg.Codes.Recorder.Forget(ids)
}

// placeCodes waits until the codes of a batch are recorded, hashes them
// and puts the hashes into its changes. Changes dropped before the write
// (keep maps old to new indexes, -1 for dropped) lose their codes again.
func (p *pass) placeCodes(ctx context.Context, b *batch, keep []int) error {
	p.startRecording(ctx, b)
	if err := <-b.recorded; err != nil {
		return err
	}
	cc := p.r.cfg.Codes
	var expires string
	if !cc.Expires.IsZero() {
		expires = cc.Expires.UTC().Format(time.RFC3339)
	}
	kept := b.codes[:0]
	var dropped []string
	for _, c := range b.codes {
		if keep != nil {
			if c.change = keep[c.change]; c.change < 0 {
				dropped = append(dropped, c.identity)
				continue
			}
		}
		hash, err := cc.Hasher.Hash(c.code)
		if err != nil {
			return fmt.Errorf("hashing a recovery code: %w", err)
		}
		ch := &b.changes[c.change]
		if ch.Attributes == nil {
			ch.Attributes = directory.Attributes{}
		}
		ch.Attributes[cc.Attribute] = []string{hash}
		if cc.ExpiresAttribute != "" && expires != "" {
			ch.Attributes[cc.ExpiresAttribute] = []string{expires}
		}
		if cc.ResetAttribute != "" {
			ch.Attributes[cc.ResetAttribute] = []string{cmp.Or(cc.ResetValue, "TRUE")}
		}
		kept = append(kept, c)
	}
	b.codes = kept
	if len(dropped) > 0 {
		cc.Recorder.Forget(dropped)
	}
	return nil
}

// settleCodes counts the codes of the changes the directory wrote and
// drops those of the changes it refused.
func (p *pass) settleCodes(b *batch, results []directory.Result) {
	var refused []string
	for _, c := range b.codes {
		if results[c.change].Err != nil {
			refused = append(refused, c.identity)
		}
	}
	b.counts.Codes = int64(len(b.codes) - len(refused))
	if len(refused) > 0 {
		p.r.cfg.Codes.Recorder.Forget(refused)
	}
}

// heldOf tells whether a looked-up user holds a code.
func (r *run) heldOf(u directory.User) bool {
	cc := r.cfg.Codes
	return cc != nil && cc.HeldAttribute != "" && len(u.Attributes[cc.HeldAttribute]) > 0 && u.Attributes[cc.HeldAttribute][0] != ""
}

// readAttributes are the attributes read from the directory: the mapped
// ones and, for WhereMissing, the one that says a user holds a code.
func (r *run) readAttributes() []string {
	cc := r.cfg.Codes
	if cc == nil || cc.Policy != v1alpha1.CodesWhereMissing || cc.HeldAttribute == "" {
		return r.attrs
	}
	for _, a := range r.attrs {
		if a == cc.HeldAttribute {
			return r.attrs
		}
	}
	return append(r.attrs[:len(r.attrs):len(r.attrs)], cc.HeldAttribute)
}
