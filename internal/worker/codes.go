package worker

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/recoverycode"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// CodeVault keeps an import's recovery codes: the key they are derived
// from, and the plain codes it gave out.
type CodeVault interface {
	// Key returns the import's key, made on first use. It exists before
	// any code is written and outlives every worker of the import.
	Key(ctx context.Context) ([]byte, error)
	// Open returns the store of the import's codes, holding those that
	// earlier workers recorded; expires is written beside each code.
	Open(ctx context.Context, expires time.Time) (CodeStore, error)
}

// CodeStore records codes for the engine.
type CodeStore interface {
	engine.CodeRecorder
	// Close stores what is not stored yet. completed says that the
	// import wrote every user it was to write: every code the store holds
	// then belongs to a user written, and their number goes to status.
	Close(ctx context.Context, completed bool) error
}

// SecretVault keeps the codes of an import in Secrets it owns: the key in
// "<import>-codes-key", the codes in "<import>-codes-0", "-1", … of at
// most jobs.CodesPerSecret codes and jobs.MaxCodesSecretBytes each. The
// names and the number of codes go to status.recoveryCodes; the codes
// themselves nowhere else.
type SecretVault struct {
	Client client.Client
	Import *v1alpha1.UserImport
}

var _ CodeVault = (*SecretVault)(nil)

// Key reads the key the controller made (executor.PrepareCodes); a key
// Secret the import does not control is refused.
func (v *SecretVault) Key(ctx context.Context) ([]byte, error) {
	name := jobs.CodesKeySecretName(v.Import)
	s, err := v.owned(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("the recovery code key: %w", err)
	}
	if s == nil || len(s.Data[runcontract.CodesKeyData]) < 32 {
		return nil, fmt.Errorf("the recovery code key: Secret %s holds no key; the operator creates it before the import runs", name)
	}
	return s.Data[runcontract.CodesKeyData], nil
}

// owned reads the Secret name of the import's codes: nil when it does not
// exist, *jobs.NotOwnedError when the import does not control it.
func (v *SecretVault) owned(ctx context.Context, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := v.Client.Get(ctx, types.NamespacedName{Namespace: v.Import.Namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	if !metav1.IsControlledBy(&s, v.Import) {
		return nil, &jobs.NotOwnedError{Import: v.Import.Name, Secret: name}
	}
	return &s, nil
}

func (v *SecretVault) Open(ctx context.Context, expires time.Time) (CodeStore, error) {
	st := &secretCodes{v: v, where: map[string]int{}}
	if !expires.IsZero() {
		st.expires = expires.UTC().Format(time.RFC3339)
	}
	for n := 0; ; n++ {
		name := jobs.CodesSecretName(v.Import, n)
		s, err := v.owned(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("recovery codes: %w", err)
		}
		if s == nil || s.Data[runcontract.CodesKey] == nil {
			// Not made, or made empty by the controller: not used yet.
			break
		}
		sec := &codeSecret{name: name, created: true, lines: map[string]string{}}
		if err := sec.load(s.Data[runcontract.CodesKey]); err != nil {
			return nil, fmt.Errorf("Secret %s (recovery codes) key %s: %w", name, runcontract.CodesKey, err)
		}
		for _, k := range sec.order {
			st.where[k] = n
		}
		st.secrets = append(st.secrets, sec)
	}
	return st, nil
}

// secretCodes is the store of SecretVault. Codes are kept by identity, as
// the Secret's cell writes it, in the Secret they were first put in.
// Record stores in groups: a caller whose codes another caller's write
// already covered returns without writing.
type secretCodes struct {
	v       *SecretVault
	expires string

	mu      sync.Mutex
	secrets []*codeSecret
	where   map[string]int // identity cell -> index in secrets
	gen     uint64         // changes made

	writeMu   sync.Mutex
	written   uint64 // gen stored
	lastWrite time.Time
}

// codesLinger is the least time between the starts of two writes of the
// codes Secrets.
const codesLinger = 200 * time.Millisecond

type codeSecret struct {
	name    string
	created bool
	dirty   bool
	order   []string          // identity cells in the order recorded
	lines   map[string]string // identity cell -> CSV line
	size    int
}

const codesHeader = "identity,code,expires\n"

func (s *codeSecret) load(data []byte) error {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = 3
	recs, err := r.ReadAll()
	if err != nil {
		return err
	}
	for i, rec := range recs {
		if i == 0 {
			continue
		}
		// The cells were written escaped; written again, they come out the
		// same.
		s.put(rec[0], codeLine(rec[0], rec[1], rec[2]))
	}
	s.dirty = false
	return nil
}

func (s *codeSecret) put(cell, line string) {
	if old, ok := s.lines[cell]; ok {
		s.size -= len(old)
	} else {
		s.order = append(s.order, cell)
	}
	s.lines[cell] = line
	s.size += len(line)
	s.dirty = true
}

func (s *codeSecret) data() []byte {
	var b bytes.Buffer
	b.Grow(len(codesHeader) + s.size)
	b.WriteString(codesHeader)
	for _, c := range s.order {
		b.WriteString(s.lines[c])
	}
	return b.Bytes()
}

// remove drops the code of cell; order keeps listing each cell of lines
// once, so that a code recorded again is written once.
func (s *codeSecret) remove(cell string) {
	s.size -= len(s.lines[cell])
	delete(s.lines, cell)
	s.order = slices.DeleteFunc(s.order, func(c string) bool { return c == cell })
	s.dirty = true
}

// codeLine is one CSV line; cell is the identity already escaped.
func codeLine(cell, code, expires string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{cell, csvsafe.Cell(code), expires})
	w.Flush()
	return b.String()
}

func (c *secretCodes) Record(ctx context.Context, codes []engine.IssuedCode) error {
	c.mu.Lock()
	for _, ic := range codes {
		cell := csvsafe.Cell(ic.Identity)
		line := codeLine(cell, ic.Code, c.expires)
		if i, ok := c.where[cell]; ok {
			if c.secrets[i].lines[cell] != line {
				c.secrets[i].put(cell, line)
			}
			continue
		}
		last := len(c.secrets) - 1
		if last < 0 || len(c.secrets[last].lines) >= jobs.CodesPerSecret || c.secrets[last].size+len(line) > jobs.MaxCodesSecretBytes-len(codesHeader) {
			c.secrets = append(c.secrets, &codeSecret{name: jobs.CodesSecretName(c.v.Import, len(c.secrets)), lines: map[string]string{}})
			last++
		}
		c.secrets[last].put(cell, line)
		c.where[cell] = last
	}
	c.gen++
	gen := c.gen
	c.mu.Unlock()
	return c.write(ctx, gen)
}

func (c *secretCodes) Forget(identities []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range identities {
		cell := csvsafe.Cell(id)
		i, ok := c.where[cell]
		if !ok {
			continue
		}
		c.secrets[i].remove(cell)
		delete(c.where, cell)
	}
	c.gen++
}

func (c *secretCodes) Code(identity string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cell := csvsafe.Cell(identity)
	i, ok := c.where[cell]
	if !ok {
		return "", false
	}
	rec, err := csv.NewReader(strings.NewReader(c.secrets[i].lines[cell])).Read()
	if err != nil || len(rec) < 2 {
		return "", false
	}
	return unescape(rec[1]), true
}

// unescape undoes csvsafe.Cell for a code: generated codes never need
// it; an imported one may start with a formula character.
func unescape(cell string) string {
	if len(cell) > 1 && cell[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(cell[1])) {
		return cell[1:]
	}
	return cell
}

func (c *secretCodes) Close(ctx context.Context, completed bool) error {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	if err := c.write(ctx, gen); err != nil {
		return err
	}
	return c.report(ctx, completed)
}

// write stores every Secret changed up to gen, unless a write since
// covered it.
func (c *secretCodes) write(ctx context.Context, gen uint64) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.written >= gen {
		return nil
	}
	// Each write rewrites the Secret being filled: writing at most every
	// codesLinger gathers the codes of many batches into one write, while
	// the batches ahead are recorded early enough not to wait for it.
	if wait := codesLinger - time.Since(c.lastWrite); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	c.lastWrite = time.Now()
	type pending struct {
		i     int
		name  string
		data  []byte
		fresh bool
	}
	c.mu.Lock()
	upTo := c.gen
	var todo []pending
	added := false
	for i, s := range c.secrets {
		if s.dirty {
			todo = append(todo, pending{i: i, name: s.name, data: s.data(), fresh: !s.created})
			s.dirty = false
			if !s.created {
				s.created, added = true, true
			}
		}
	}
	c.mu.Unlock()
	if added {
		// Said before the write: the controller makes the codes Secrets
		// that follow those in use.
		if err := c.report(ctx, false); err != nil {
			return err
		}
	}
	for k, p := range todo {
		if err := c.store(ctx, p.name, p.data, p.fresh); err != nil {
			c.mu.Lock()
			for _, q := range todo[k:] {
				c.secrets[q.i].dirty = true
			}
			c.mu.Unlock()
			return fmt.Errorf("writing Secret %s (recovery codes): %w", p.name, err)
		}
	}
	c.written = upTo
	return nil
}

// store writes the codes of one Secret. The controller makes the codes
// Secrets (executor.PrepareCodes) a few ahead of those in use; a worker
// that gets ahead of it waits for the next one (not there yet, or not yet
// in its Role) up to codesSecretWait. A Secret written for the first
// time must be controlled by the import.
func (c *secretCodes) store(ctx context.Context, name string, data []byte, fresh bool) error {
	d := map[string][]byte{runcontract.CodesKey: data}
	raw, err := mergePatchOfData(d)
	if err != nil {
		return err
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.v.Import.Namespace, Name: name}}
	deadline := time.Now().Add(codesSecretWait)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		var err error
		if fresh {
			var cur *corev1.Secret
			if cur, err = c.v.owned(ctx, name); err == nil && cur == nil {
				err = apierrors.NewNotFound(corev1.Resource("secrets"), name)
			}
		}
		if err == nil {
			err = c.v.Client.Patch(ctx, s, client.RawPatch(types.MergePatchType, raw))
		}
		if err == nil || !(apierrors.IsNotFound(err) || apierrors.IsForbidden(err)) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// codesSecretWait bounds the wait for the controller to make the next
// codes Secret.
var codesSecretWait = 2 * time.Minute

// report records the names of the Secrets in the import's status. The
// number of codes is counted with the users written (the progress), not
// here: the Secrets hold the codes of batches not written yet.
func (c *secretCodes) report(ctx context.Context, completed bool) error {
	c.mu.Lock()
	var names []string
	for _, s := range c.secrets {
		if s.created {
			names = append(names, s.name)
		}
	}
	held := len(c.where)
	c.mu.Unlock()
	st := map[string]any{"secrets": names}
	if completed {
		// Codes whose user the directory refused were forgotten: those
		// left are held by users written, whichever run wrote them.
		st["issued"] = held
	}
	if c.expires != "" {
		t, _ := time.Parse(time.RFC3339, c.expires)
		st["expires"] = metav1.Time{Time: t}
	}
	// A merge patch of these fields needs no read and cannot conflict
	// with the progress reports patched beside it.
	raw, err := json.Marshal(map[string]any{"status": map[string]any{"recoveryCodes": st}})
	if err != nil {
		return err
	}
	imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: c.v.Import.Namespace, Name: c.v.Import.Name}}
	return c.v.Client.Status().Patch(ctx, imp, client.RawPatch(types.MergePatchType, raw))
}

// CodeStorage says how the directory of dir stores the codes spec asks
// for: the attribute, the hash, and how a user that holds a code is told.
// An error says why the directory cannot store them as configured.
func CodeStorage(spec v1alpha1.RecoveryCodes, dir v1alpha1.UserDirectorySpec, dirName string) (*engine.CodeConfig, error) {
	rc := dir.RecoveryCodes
	if rc == nil {
		return nil, fmt.Errorf("UserDirectory %s has no spec.recoveryCodes: it says where the directory keeps codes and how they are hashed", dirName)
	}
	if spec.MustChange && dir.LDAP == nil {
		return nil, fmt.Errorf("spec.recoveryCodes.mustChange: only an LDAP directory marks a credential to be changed at first use (pwdReset); UserDirectory %s is not LDAP", dirName)
	}
	if spec.ExpiresAfter != nil && rc.ExpiresAttribute == "" {
		return nil, fmt.Errorf("spec.recoveryCodes.expiresAfter: UserDirectory %s names no spec.recoveryCodes.expiresAttribute to record it in", dirName)
	}
	cc := &engine.CodeConfig{Policy: spec.Generate, Column: spec.Column, Attribute: rc.Attribute, ExpiresAttribute: rc.ExpiresAttribute}
	costs := recoverycode.Costs{MemoryKiB: rc.MemoryKiB, Iterations: rc.Iterations, Parallelism: rc.Parallelism, BcryptCost: rc.BcryptCost}
	scheme := rc.Scheme
	var err error
	switch {
	case dir.LDAP != nil && dir.LDAP.Vendor == v1alpha1.LDAPActiveDirectory:
		// AD hashes the password itself, and never returns it.
		if cc.Attribute != "" && !strings.EqualFold(cc.Attribute, "unicodePwd") {
			return nil, fmt.Errorf("UserDirectory %s spec.recoveryCodes.attribute: Active Directory takes a code only as the password, unicodePwd, not %q", dirName, cc.Attribute)
		}
		if scheme != "" {
			return nil, fmt.Errorf("UserDirectory %s spec.recoveryCodes.scheme: Active Directory hashes the password itself; leave scheme unset", dirName)
		}
		cc.Attribute = "unicodePwd"
		cc.Hasher, err = recoverycode.NewHasher(v1alpha1.SchemePlain, false, costs)
		cc.HeldAttribute = rc.ExpiresAttribute
		if spec.Generate == v1alpha1.CodesWhereMissing && cc.HeldAttribute == "" {
			return nil, fmt.Errorf("spec.recoveryCodes.generate WhereMissing: Active Directory never returns a password, so UserDirectory %s needs spec.recoveryCodes.expiresAttribute to tell which users hold a code", dirName)
		}
		if spec.MustChange {
			cc.ResetAttribute, cc.ResetValue = "pwdLastSet", "0"
		}
	case dir.LDAP != nil:
		if cc.Attribute == "" {
			cc.Attribute = "userPassword"
		}
		if scheme == "" {
			scheme = v1alpha1.SchemeSSHA512
		}
		cc.Hasher, err = recoverycode.NewHasher(scheme, true, costs)
		cc.HeldAttribute = cc.Attribute
		if spec.MustChange {
			cc.ResetAttribute = "pwdReset"
		}
	case dir.SQL != nil:
		if cc.Attribute == "" {
			return nil, fmt.Errorf("UserDirectory %s spec.recoveryCodes.attribute: an SQL directory needs the column that holds the hash", dirName)
		}
		if scheme == "" {
			scheme = v1alpha1.SchemeArgon2id
		}
		cc.Hasher, err = recoverycode.NewHasher(scheme, false, costs)
		cc.HeldAttribute = cc.Attribute
	case dir.SCIM != nil:
		if cc.Attribute != "" && cc.Attribute != "password" {
			return nil, fmt.Errorf("UserDirectory %s spec.recoveryCodes.attribute: a SCIM server takes a code only in its write-only password attribute, not %q", dirName, cc.Attribute)
		}
		if scheme != "" {
			return nil, fmt.Errorf("UserDirectory %s spec.recoveryCodes.scheme: a SCIM server hashes the password itself; leave scheme unset", dirName)
		}
		cc.Attribute = "password"
		cc.Hasher, err = recoverycode.NewHasher(v1alpha1.SchemePlain, false, costs)
		// The password is never returned: the expiry is the only record.
		cc.HeldAttribute = rc.ExpiresAttribute
		if spec.Generate == v1alpha1.CodesWhereMissing && cc.HeldAttribute == "" {
			return nil, fmt.Errorf("spec.recoveryCodes.generate WhereMissing: a SCIM server never returns a password, so UserDirectory %s needs spec.recoveryCodes.expiresAttribute to tell which users hold a code", dirName)
		}
	default:
		return nil, fmt.Errorf("UserDirectory %s names no directory type", dirName)
	}
	if err != nil {
		return nil, fmt.Errorf("UserDirectory %s spec.recoveryCodes.scheme: %w", dirName, err)
	}
	return cc, nil
}

// codeAttributes lists the attributes codes write, for the provider's
// vocabulary check.
func codeAttributes(cc *engine.CodeConfig) []string {
	attrs := []string{cc.Attribute}
	if cc.ExpiresAttribute != "" {
		attrs = append(attrs, cc.ExpiresAttribute)
	}
	return attrs
}
