package engine

import (
	"fmt"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// Config is everything Run needs to know about an import: what the
// UserImport asks for, how the UserDirectory marks and identifies users,
// and how hard to push the directory.
type Config struct {
	// Format and Mapping are the UserImport's.
	Format  v1alpha1.CSVFormat
	Mapping []v1alpha1.AttributeMapping

	// Mode is Full or Delta (the default).
	Mode v1alpha1.ImportMode
	// MissingUsers says what a full import does with users in scope that
	// the file does not list.
	MissingUsers v1alpha1.MissingUsersPolicy
	// StatusColumn deactivates or deletes the users of individual rows of
	// a delta import.
	StatusColumn *v1alpha1.StatusColumn

	// MaxDeprovision and MaxDeprovisionPercent (of the managed users) bound
	// the deactivations and deletions of a full import; nil means no bound
	// of that kind. ApprovedDeprovisions lets a person allow more.
	MaxDeprovision        *int64
	MaxDeprovisionPercent *int64
	ApprovedDeprovisions  *int64

	// CreateGroups creates the groups the file names that the directory
	// lacks; without it such a row is an error. MaxMembershipRemovals,
	// MaxMembershipRemovalPercent (of the memberships of the managed
	// groups) and ApprovedMembershipRemovals bound the removals from
	// groups as the deprovision thresholds bound deprovisions.
	CreateGroups                bool
	MaxMembershipRemovals       *int64
	MaxMembershipRemovalPercent *int64
	ApprovedMembershipRemovals  *int64

	// MaxErrors and MaxErrorPercent (of the rows read, checked once 100
	// rows have been read) stop an import with too many bad rows; nil
	// means no limit of that kind.
	MaxErrors       *int64
	MaxErrorPercent *int64

	// Directory holds the identity attribute, the managed-user marker (on
	// every create) and whether the directory's scope is managed users
	// only.
	Directory directory.Options

	// Invite, when set, makes the run invite users after its writes.
	Invite *InviteConfig

	// Codes, when set, gives users recovery codes with their writes.
	Codes *CodeConfig

	// BatchSize is the number of changes per Apply (default 100).
	BatchSize int
	// Concurrency is the number of batches in flight (default 4).
	Concurrency int
	// ProgressInterval is the least time between two progress reports;
	// 0 reports at every checkpoint.
	ProgressInterval time.Duration
	// KeepErrors and KeepSamples bound the row errors and planned changes
	// kept in Result (defaults 1000 and 100); the Reporter sees every
	// error.
	KeepErrors  int
	KeepSamples int
}

// NewConfig builds a Config from a UserImport, the execution settings of
// its UserDirectory and the options its provider was opened with (the
// engine and the provider must agree on the identity, the marker and the
// scope), with the API's defaults for unset fields.
func NewConfig(imp v1alpha1.UserImportSpec, exec v1alpha1.ExecutionSettings, dir directory.Options) Config {
	c := Config{
		Format:           imp.Format,
		Mapping:          imp.Mapping,
		Mode:             imp.Mode,
		MissingUsers:     imp.MissingUsers,
		StatusColumn:     imp.StatusColumn,
		Directory:        dir,
		BatchSize:        int(exec.BatchSize),
		Concurrency:      int(exec.Concurrency),
		ProgressInterval: 5 * time.Second,
		MaxErrors:        imp.ErrorPolicy.MaxErrors,
	}
	c.MaxDeprovision = widen(imp.Safety.MaxDeprovision)
	c.MaxDeprovisionPercent = widen(imp.Safety.MaxDeprovisionPercent)
	if c.MaxDeprovisionPercent == nil {
		c.MaxDeprovisionPercent = ptr(int64(10))
	}
	c.ApprovedDeprovisions = widen(imp.Safety.ApprovedDeprovisions)
	c.CreateGroups = imp.CreateGroups == nil || *imp.CreateGroups
	c.MaxMembershipRemovals = widen(imp.Safety.MaxMembershipRemovals)
	c.MaxMembershipRemovalPercent = widen(imp.Safety.MaxMembershipRemovalPercent)
	if c.MaxMembershipRemovalPercent == nil {
		c.MaxMembershipRemovalPercent = ptr(int64(10))
	}
	c.ApprovedMembershipRemovals = widen(imp.Safety.ApprovedMembershipRemovals)
	c.MaxErrorPercent = widen(imp.ErrorPolicy.MaxErrorPercent)
	if c.MaxErrorPercent == nil {
		c.MaxErrorPercent = ptr(int64(10))
	}
	return c
}

func widen(p *int32) *int64 {
	if p == nil {
		return nil
	}
	return ptr(int64(*p))
}

func ptr[T any](v T) *T { return &v }

// withDefaults fills unset execution settings and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Mode == "" {
		c.Mode = v1alpha1.ModeDelta
	}
	if c.MissingUsers == "" {
		c.MissingUsers = v1alpha1.MissingIgnore
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.KeepErrors <= 0 {
		c.KeepErrors = 1000
	}
	if c.KeepSamples <= 0 {
		c.KeepSamples = 100
	}
	switch {
	case c.Mode != v1alpha1.ModeFull && c.Mode != v1alpha1.ModeDelta:
		return c, fmt.Errorf("mode %q: want Full or Delta", c.Mode)
	case c.Mode == v1alpha1.ModeDelta && c.MissingUsers != v1alpha1.MissingIgnore:
		return c, fmt.Errorf("missingUsers %s needs mode Full", c.MissingUsers)
	case c.Mode == v1alpha1.ModeFull && c.StatusColumn != nil:
		return c, fmt.Errorf("statusColumn is only allowed with mode Delta")
	case c.Directory.IdentityAttribute == "":
		return c, fmt.Errorf("the directory's identity attribute is not set")
	case c.Invite != nil && (c.Invite.InvitedAttribute == "" || c.Invite.Inviter == nil):
		return c, fmt.Errorf("invitations need the directory's invited attribute and an inviter")
	}
	return c, nil
}
