package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// Invitations: after the writes, one more pass over the file sends the
// invitations its users are owed. What is owed is read from the directory,
// never from memory: a user an import creates carries InvitationDue in the
// invited attribute, written with the user itself, and a sent invitation
// replaces it with the time it went out. A pass that is stopped and run
// again therefore finds exactly the invitations still owed.
//
// One window is left: a worker killed (SIGKILL, out of memory) after the
// relay accepted a message and before the directory recorded it sends
// that one message again when resumed. A stopped worker (SIGTERM, as when
// its pod is deleted) finishes the message in hand and its record first.

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
	// Pending is true for an invitation to a pending user, false for one
	// to a new user.
	Pending bool
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

// sendTimeout bounds the send and record of one invitation, which go on
// when the run is stopped.
const sendTimeout = 60 * time.Second

// markNew adds to the attributes of a user to create the marker of
// managed users and, when new users are invited, the invitation due.
func (r *run) markNew(attrs directory.Attributes) {
	attrs[r.cfg.Directory.MarkerAttribute] = []string{r.cfg.Directory.MarkerValue}
	if ic := r.cfg.Invite; ic != nil && ic.NewUsers {
		attrs[ic.InvitedAttribute] = []string{InvitationDue}
	}
}

// invite runs the invitation pass.
func (r *run) invite(ctx context.Context, dry bool, report Reporter) (Invitations, error) {
	ic := r.cfg.Invite
	now := ic.Now
	if now == nil {
		now = time.Now
	}
	seen := newIDSet(0)
	r.sets = append(r.sets, seen)
	var (
		out      Invitations
		batch    []Invitee
		rendered bool
		last     time.Time
	)
	progress := func(final bool) {
		ir, ok := report.(InvitationReporter)
		if !ok || dry || (!final && time.Since(last) < r.cfg.ProgressInterval) {
			return
		}
		last = time.Now()
		ir.Invitations(out)
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.inviteBatch(ctx, batch, dry, now, &out, report)
		batch = batch[:0]
		progress(false)
		return err
	}
	_, err := r.scanFile(ctx, func(c *chunk, rec *mapping.Record) {
		for i := range c.rows {
			m := &c.rows[i]
			if r.mapRow(m, rec) {
				m.attrs = r.mapper.AttributesOf(rec)
			}
		}
	}, func(c *chunk) error {
		for i := range c.rows {
			m := &c.rows[i]
			if m.lineErr != nil || m.msg != "" || !seen.add(hashIdentity(m.identity)) {
				continue
			}
			inv := r.invitee(m)
			if dry && !rendered {
				rendered = true
				if err := ic.Inviter.Render(inv); err != nil {
					return &InputError{Reason: v1alpha1.ReasonInvalidTemplate, Err: err}
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
	if err == nil {
		err = flush()
	}
	progress(true)
	return out, err
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
// invitation, one at a time: each sent invitation is recorded in the
// directory before the next is sent.
func (r *run) inviteBatch(ctx context.Context, batch []Invitee, dry bool, now func() time.Time, out *Invitations, report Reporter) error {
	ic := r.cfg.Invite
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
		owed, pending := r.owed(u, found, dry, now())
		if !owed {
			continue
		}
		inv.Pending = pending
		switch {
		case strings.TrimSpace(inv.Address) == "":
			out.NoAddress++
			continue
		case pending:
			out.PendingUsers++
		default:
			out.NewUsers++
		}
		if dry {
			continue
		}
		if out.RelayError != nil {
			out.Failed++
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.sendOne(ctx, inv, u, now, out, report); err != nil {
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

// sendOne sends one invitation and records it. Once begun, the two go on
// when ctx is cancelled, within sendTimeout: a stopped worker leaves no
// message sent and not recorded.
func (r *run) sendOne(ctx context.Context, inv Invitee, u directory.User, now func() time.Time, out *Invitations, report Reporter) error {
	ic := r.cfg.Invite
	held, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	err := ic.Inviter.Send(held, inv)
	var refused *RecipientError
	switch {
	case errors.As(err, &refused):
		out.Failed++
		report.RowError(RowError{Line: inv.Line, Identity: inv.Identity, Msg: "invitation not sent: " + refused.Msg})
		return nil
	case err != nil:
		out.Failed++
		out.RelayError = err
		return nil
	}
	stamp := directory.Change{Op: directory.OpUpdate, Line: inv.Line, Identity: inv.Identity, ID: u.ID,
		Attributes: directory.Attributes{ic.InvitedAttribute: {now().UTC().Format(time.RFC3339)}}}
	results, err := r.dir.Apply(held, []directory.Change{stamp})
	if err == nil && len(results) == 1 && results[0].Err != nil {
		err = results[0].Err
		if !directory.IsChangeError(err) {
			// Only a ChangeError promises a message free of values.
			err = errors.New("the directory refused the update")
		}
	}
	if err != nil {
		// The mail went out but is not recorded: the run must stop, or a
		// resumed one would send it again without knowing.
		return fmt.Errorf("line %d: recording the invitation sent in %s: %w", inv.Line, ic.InvitedAttribute, err)
	}
	out.Sent++
	return nil
}
