package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// Invitations: after the writes, one more pass over the file sends the
// invitations its users are owed. What is owed is read from the directory,
// never from memory: a user an import creates carries InvitationDue in the
// invited attribute, written with the user itself, and a sent invitation
// replaces it with the time it went out. A pass that is stopped and run
// again therefore finds exactly the invitations still owed.
//
// Messages go out one at a time on one connection; their records are
// written beside them, a few per transaction, so that the directory's
// round trips do not slow the sending. At most maxUnrecorded messages are
// ever sent and not yet recorded. A stopped worker (SIGTERM, as when its
// pod is deleted) finishes the message in hand and writes every record
// before it ends, so a resumed one sends nothing twice. One window is
// left: a worker killed outright (SIGKILL, out of memory) sends the
// messages whose records were not written yet — at most maxUnrecorded —
// again when resumed, with the same Message-ID.

// InvitationDue is the invited attribute's value on a user that an import
// created and has not invited yet.
const InvitationDue = "due"

// InviteConfig says which invitations a run sends.
type InviteConfig struct {
	// NewUsers invites the users the import creates; PendingUsers the
	// users of the file the directory records as pending.
	NewUsers, PendingUsers bool
	// AddressAttribute is the mapped attribute holding the address.
	AddressAttribute string
	// InvitedAttribute records InvitationDue or when the user was last
	// invited (RFC 3339).
	InvitedAttribute string
	// PendingAttribute and PendingValue recognise a pending user; empty:
	// no user is pending.
	PendingAttribute, PendingValue string
	// ResendAfter is the least time between two invitations to a pending
	// user.
	ResendAfter time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Inviter renders and sends the mails.
	Inviter Inviter
}

// Invitee is one user to invite: the row's mapped attributes, every one
// present ("" when the row has none), by attribute name.
type Invitee struct {
	Line       int64
	Identity   string
	Address    string
	Attributes map[string]string
	// RecoveryCode is the code this import gave the user, or "".
	RecoveryCode string
}

// Inviter renders and sends invitations.
type Inviter interface {
	// Render renders the invitation of inv without sending it. A dry run
	// renders the first valid row's: a template that fails stops the
	// preview, not an import halfway through.
	Render(inv Invitee) error
	// Send sends the invitation of inv. A *RecipientError fails this
	// invitation alone; any other error is a failure of the relay, which
	// stops the sending.
	Send(ctx context.Context, inv Invitee) error
}

// RecipientError is an invitation refused for its recipient. Msg names
// the reason, never the address.
type RecipientError struct{ Msg string }

func (e *RecipientError) Error() string { return e.Msg }

// Invitations are the invitations of a run: planned in a dry run, sent
// otherwise.
type Invitations struct {
	// NewUsers and PendingUsers count the invitations owed with an
	// address; NoAddress those owed without one, which are not sent.
	v1alpha1.InvitationCounts
	// Sent and Failed count the invitations sent and not sent (refused
	// recipients, or not tried after the relay failed).
	Sent, Failed int64
	// RelayError is the failure of the relay that stopped the sending.
	RelayError error
}

// InvitationReporter is implemented by a Reporter that follows the
// invitations as they are sent.
type InvitationReporter interface {
	Invitations(Invitations)
}

// sendTimeout bounds the send of one invitation, and one write of
// records, which go on when the run is stopped.
const sendTimeout = 60 * time.Second

// maxUnrecorded bounds the invitations sent and not yet recorded; the
// records are written recordBatch at a time, or after recordLinger.
const (
	maxUnrecorded = 16
	recordBatch   = 8
	recordLinger  = 20 * time.Millisecond
)

// markNew adds to the attributes of a user to create the marker of
// managed users and, when new users are invited, the invitation due.
func (r *run) markNew(attrs directory.Attributes) {
	attrs[r.cfg.Directory.MarkerAttribute] = []string{r.cfg.Directory.MarkerValue}
	if ic := r.cfg.Invite; ic != nil && ic.NewUsers {
		attrs[ic.InvitedAttribute] = []string{InvitationDue}
	}
}

// invitePass is the state of one invitation pass.
type invitePass struct {
	r      *run
	ic     *InviteConfig
	dry    bool
	now    func() time.Time
	report Reporter
	// out is the planner's; Sent is kept by the recorder in sent.
	out  Invitations
	rec  *records
	last time.Time
}

// invite runs the invitation pass.
func (r *run) invite(ctx context.Context, dry bool, report Reporter) (Invitations, error) {
	p := &invitePass{r: r, ic: r.cfg.Invite, dry: dry, now: r.cfg.Invite.Now, report: report}
	if p.now == nil {
		p.now = time.Now
	}
	if !dry {
		p.rec = r.newRecords(ctx, p.ic.InvitedAttribute, p.now)
	}
	err := p.scan(ctx)
	if p.rec != nil {
		// Every message sent is recorded before the pass ends, stopped
		// or not.
		if rerr := p.rec.close(); err == nil {
			err = rerr
		}
		p.out.Sent = p.rec.sent.Load()
	}
	p.progress(true)
	return p.out, err
}

// scan reads the file and invites its users, a batch at a time.
func (p *invitePass) scan(ctx context.Context) error {
	r := p.r
	seen := newIDSet(0)
	r.sets = append(r.sets, seen)
	var batch []Invitee
	rendered := false
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.inviteBatch(ctx, batch)
		batch = batch[:0]
		p.progress(false)
		return err
	}
	_, err := r.scanFile(ctx, func(c *chunk, rec *mapping.Record) {
		for i := range c.rows {
			m := &c.rows[i]
			// A row the users' pass failed was not written: no invitation.
			if r.mapWhole(c, m, rec) {
				m.attrs = r.mapper.AttributesOf(rec)
			}
		}
	}, func(c *chunk) error {
		for i := range c.rows {
			m := &c.rows[i]
			if !r.claims(m, seen) || m.msg != "" || r.statusAction(m) != directory.OpCreate {
				// A failed line wrote nothing; a line that deactivates or
				// deletes its user creates nobody to invite.
				continue
			}
			inv := r.invitee(m)
			if p.dry && !rendered {
				rendered = true
				if err := p.ic.Inviter.Render(inv); err != nil {
					return failure.Stall(v1alpha1.ReasonInvalidTemplate, err)
				}
			}
			batch = append(batch, inv)
			if len(batch) >= r.cfg.BatchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// progress reports the invitations so far, at most once per progress
// interval unless final.
func (p *invitePass) progress(final bool) {
	ir, ok := p.report.(InvitationReporter)
	if !ok || p.dry || (!final && time.Since(p.last) < p.r.cfg.ProgressInterval) {
		return
	}
	p.last = time.Now()
	out := p.out
	if p.rec != nil {
		out.Sent = p.rec.sent.Load()
	}
	ir.Invitations(out)
}

// invitee is the Invitee of a mapped row, copied out of its chunk.
func (r *run) invitee(m *mappedRow) Invitee {
	inv := Invitee{Line: m.rec.Line, Identity: strings.Clone(m.identity), Attributes: make(map[string]string, len(r.attrs))}
	for _, a := range r.attrs {
		inv.Attributes[a] = strings.Clone(strings.Join(m.attrs[a], ", "))
	}
	inv.Address = inv.Attributes[r.cfg.Invite.AddressAttribute]
	return inv
}

// inviteBatch looks the users of batch up and invites those owed an
// invitation.
func (p *invitePass) inviteBatch(ctx context.Context, batch []Invitee) error {
	r, ic, out := p.r, p.ic, &p.out
	ids := make([]string, len(batch))
	for i, inv := range batch {
		ids[i] = inv.Identity
	}
	attrs := []string{r.cfg.Directory.IdentityAttribute, ic.InvitedAttribute}
	if ic.PendingAttribute != "" {
		attrs = append(attrs, ic.PendingAttribute)
	}
	users, err := r.dir.Lookup(ctx, ids, attrs)
	if err != nil {
		return fmt.Errorf("looking up users to invite: %w", err)
	}
	for _, inv := range batch {
		u, found := users[inv.Identity]
		owed, pending := r.owed(u, found, p.dry, p.now())
		if !owed {
			continue
		}
		switch {
		case strings.TrimSpace(inv.Address) == "":
			out.NoAddress++
			continue
		case pending:
			out.PendingUsers++
		default:
			out.NewUsers++
		}
		if p.dry {
			continue
		}
		if out.RelayError != nil {
			out.Failed++
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if cc := r.cfg.Codes; cc != nil && cc.Recorder != nil {
			inv.RecoveryCode, _ = cc.Recorder.Code(inv.Identity)
		}
		if err := p.send(ctx, inv, u); err != nil {
			return err
		}
	}
	return nil
}

// owed says whether user u (found: whether the directory holds it) is owed
// an invitation, and whether as a pending user.
func (r *run) owed(u directory.User, found, dry bool, now time.Time) (owed, pending bool) {
	ic := r.cfg.Invite
	if !found {
		// A dry run plans the creates it would make; a run that wrote finds
		// every user it created.
		return dry && ic.NewUsers, false
	}
	if r.cfg.Directory.ManagedOnly && !u.Managed {
		return false, false
	}
	invited := first(u.Attributes[ic.InvitedAttribute])
	if ic.NewUsers && invited == InvitationDue {
		return true, false
	}
	if !ic.PendingUsers || ic.PendingAttribute == "" || !u.Active || first(u.Attributes[ic.PendingAttribute]) != ic.PendingValue {
		return false, false
	}
	if t, err := time.Parse(time.RFC3339, invited); err == nil && now.Sub(t) < ic.ResendAfter {
		return false, false
	}
	return true, true
}

// send sends one invitation and hands its record to the recorder. Once
// begun, a send goes on when ctx is cancelled, within sendTimeout.
func (p *invitePass) send(ctx context.Context, inv Invitee, u directory.User) error {
	if err := p.rec.reserve(); err != nil {
		return err
	}
	held, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	err := p.ic.Inviter.Send(held, inv)
	var refused *RecipientError
	switch {
	case errors.As(err, &refused):
		p.rec.release()
		p.out.Failed++
		p.report.RowError(RowError{Line: inv.Line, Identity: inv.Identity, Msg: "invitation not sent: " + refused.Msg})
	case err != nil:
		p.rec.release()
		p.out.Failed++
		p.out.RelayError = err
	default:
		p.rec.add(directory.Change{Op: directory.OpUpdate, Line: inv.Line, Identity: inv.Identity, ID: u.ID})
	}
	return nil
}

// records writes the records of sent invitations in the background, a
// few per Apply. reserve bounds the messages sent and not yet recorded.
type records struct {
	dir   directory.Directory
	attr  string
	now   func() time.Time
	ctx   context.Context
	slots chan struct{}
	queue chan directory.Change
	done  chan struct{}
	err   error // set by the recorder goroutine, read after done
	sent  atomic.Int64
	// failed is set once a record could not be written: no message may
	// be sent after it, or a resumed run would send it again unknowingly.
	failed atomic.Bool
}

func (r *run) newRecords(ctx context.Context, attr string, now func() time.Time) *records {
	rec := &records{dir: r.dir, attr: attr, now: now, ctx: context.WithoutCancel(ctx),
		slots: make(chan struct{}, maxUnrecorded), queue: make(chan directory.Change, maxUnrecorded), done: make(chan struct{})}
	go rec.loop()
	return rec
}

// reserve takes a slot for one message, waiting while maxUnrecorded are
// unrecorded; it fails once a record could not be written.
func (rec *records) reserve() error {
	if rec.failed.Load() {
		return rec.close()
	}
	rec.slots <- struct{}{}
	if rec.failed.Load() {
		<-rec.slots
		return rec.close()
	}
	return nil
}

func (rec *records) release() { <-rec.slots }

// add queues the record of a sent message, whose slot it holds.
func (rec *records) add(c directory.Change) {
	c.Attributes = directory.Attributes{rec.attr: {rec.now().UTC().Format(time.RFC3339)}}
	rec.queue <- c
}

// close writes the records queued, stops the recorder and returns the
// first failure; closing again returns it again.
func (rec *records) close() error {
	if rec.queue == nil {
		return rec.err
	}
	close(rec.queue)
	<-rec.done
	rec.queue = nil
	return rec.err
}

func (rec *records) loop() {
	defer close(rec.done)
	for c := range rec.queue {
		// A record waits a little for others, so that one transaction
		// holds several: each costs the directory a commit.
		batch := []directory.Change{c}
		linger := time.NewTimer(recordLinger)
	more:
		for len(batch) < recordBatch {
			select {
			case c, ok := <-rec.queue:
				if !ok {
					break more
				}
				batch = append(batch, c)
			case <-linger.C:
				break more
			}
		}
		linger.Stop()
		if rec.err == nil {
			rec.err = rec.write(batch)
			if rec.err != nil {
				rec.failed.Store(true)
			}
		}
		for range batch {
			<-rec.slots
		}
	}
}

// write records a batch of sent invitations.
func (rec *records) write(batch []directory.Change) error {
	ctx, cancel := context.WithTimeout(rec.ctx, sendTimeout)
	defer cancel()
	results, err := rec.dir.Apply(ctx, batch)
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("%d results for %d records", len(results), len(batch))
	}
	if err != nil {
		// The mails went out but are not recorded: the run must stop, or a
		// resumed one would send them again without knowing.
		return fmt.Errorf("recording invitations sent in %s: %w", rec.attr, err)
	}
	for i, res := range results {
		if res.Err == nil {
			rec.sent.Add(1)
			continue
		}
		msg := "the directory refused the update"
		if directory.IsChangeError(res.Err) {
			// Only a ChangeError promises a message free of values.
			msg = res.Err.Error()
		}
		return fmt.Errorf("line %d: recording the invitation sent in %s: %s", batch[i].Line, rec.attr, msg)
	}
	return nil
}
