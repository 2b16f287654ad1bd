package directory

import "context"

// Group is one group as the directory holds it.
type Group struct {
	// ID is the directory's own key: a SCIM id, an LDAP DN; for SQL the
	// name.
	ID string
	// Name is the group's name, as a mapping entry with target Groups
	// gives it.
	Name string
	// Managed is true when an import created the group (it carries the
	// marker): only managed groups lose members.
	Managed bool
	// Members are the references of the members (see
	// GroupDirectory.MemberReference).
	Members []string
}

// GroupChange is one write to one group.
type GroupChange struct {
	// Name of the group; ID is empty for a group to create.
	Name string
	ID   string
	// Add and Remove are member references.
	Add, Remove []string
	// Empty says that the group has no member left after the change.
	Empty bool
}

// GroupDirectory is implemented by directories that can keep groups.
type GroupDirectory interface {
	// HasGroups tells whether the directory's configuration names where
	// groups are kept.
	HasGroups() bool
	// ListGroups calls fn for every group, with its members. A failure
	// to read is an error, never an empty result.
	ListGroups(ctx context.Context, fn func(Group) error) error
	// ApplyGroup writes one change: a group to create (marked as
	// managed) with its first members, or members to add and remove. It
	// returns the group's ID. Several requests may be needed (the
	// provider splits large changes as the server requires); a change
	// applied again, after an interruption, has no further effect. A
	// *ChangeError refuses this change alone.
	ApplyGroup(ctx context.Context, change GroupChange) (string, error)
	// MemberReference is how a group refers to user u: a DN, a SCIM id,
	// an identity.
	MemberReference(u User) string
}

// ManagerDirectory is implemented by directories that hold a reference
// from a user to their manager.
type ManagerDirectory interface {
	// ManagerReference is the value of a manager attribute that refers to
	// user u: an LDAP DN, a SCIM id, an SQL identity.
	ManagerReference(u User) string
	// PredictReference is the reference the user with identity will have
	// once an import creates it, when the directory lets it be known
	// before (an LDAP DN, an SQL identity); false when not (a SCIM id).
	PredictReference(identity string) (string, bool)
}
