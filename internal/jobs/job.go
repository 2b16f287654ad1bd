package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Settings are the operator-wide settings of worker Jobs.
type Settings struct {
	// Image is the operator's own image; the Job runs its worker command.
	Image string
	// PullPolicy of the image; empty leaves the cluster default.
	PullPolicy corev1.PullPolicy
	// TTLSecondsAfterFinished removes finished Jobs after this long; nil
	// keeps them.
	TTLSecondsAfterFinished *int32
	// Resources are the worker's resources where the directory names
	// none; nil: DefaultResources.
	Resources *corev1.ResourceRequirements
}

// Defaults of the directory's spec.execution, used when a field is unset
// (objects created before defaulting, or built in tests).
const (
	DefaultBackoffLimit          int32 = 3
	DefaultActiveDeadlineSeconds int64 = 86400
)

// DefaultResources are the worker's resources when the directory names none.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("512Mi"),
		},
	}
}

// Build returns the Job that runs stage of imp against dir. It is pure:
// the same arguments give the same Job.
func Build(imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory, stage Stage, settings Settings) (*batchv1.Job, error) {
	if stage != StagePreview && stage != StageImport {
		return nil, fmt.Errorf("unknown stage %q", stage)
	}
	if settings.Image == "" {
		return nil, errors.New("no worker image: set --worker-image or OPERATOR_IMAGE")
	}
	if imp.UID == "" {
		return nil, errors.New("the UserImport has no UID yet")
	}
	if dir.Name != imp.Spec.DirectoryRef.Name {
		return nil, fmt.Errorf("directory %q is not the import's directory %q", dir.Name, imp.Spec.DirectoryRef.Name)
	}
	dirJSON, err := json.Marshal(dir.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the directory spec: %w", err)
	}

	exec := dir.Spec.Execution
	backoff := DefaultBackoffLimit
	if exec.BackoffLimit != nil {
		backoff = *exec.BackoffLimit
	}
	deadline := DefaultActiveDeadlineSeconds
	if exec.ActiveDeadlineSeconds != nil {
		deadline = *exec.ActiveDeadlineSeconds
	}
	resources := DefaultResources()
	if settings.Resources != nil {
		resources = *settings.Resources.DeepCopy()
	}
	if exec.Resources != nil {
		resources = *exec.Resources.DeepCopy()
	}
	if _, ok := resources.Limits[corev1.ResourceEphemeralStorage]; !ok {
		// /tmp and the container's own writes (its log): a worker that
		// fills the node's disk is evicted, not the node's other pods.
		if resources.Limits == nil {
			resources.Limits = corev1.ResourceList{}
		}
		limit := TmpSize(imp)
		limit.Add(resource.MustParse("256Mi"))
		resources.Limits[corev1.ResourceEphemeralStorage] = limit
	}

	volumes, mounts := volumes(imp, dir)
	labels := Labels(imp, stage)

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            JobName(imp, stage),
			Namespace:       imp.Namespace,
			Labels:          labels,
			OwnerReferences: []metav1.OwnerReference{ownerRef(imp)},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(backoff),
			ActiveDeadlineSeconds:   ptr.To(deadline),
			TTLSecondsAfterFinished: copyInt32(settings.TTLSecondsAfterFinished),
			// A pod being deleted keeps writing until it has stopped; its
			// replacement starts only then, so that two workers of one
			// import never write at once.
			PodReplacementPolicy: ptr.To(batchv1.Failed),
			// A worker that refused its input would refuse it again.
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
				Action: batchv1.PodFailurePolicyActionFailJob,
				OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					ContainerName: ptr.To(ContainerName),
					Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
					Values:        []int32{ExitRejected},
				},
			}}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: copyLabels(labels)},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           ServiceAccountName(imp),
					AutomountServiceAccountToken: ptr.To(true),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(WorkerUID),
						RunAsGroup:     ptr.To(WorkerUID),
						FSGroup:        ptr.To(WorkerUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            ContainerName,
						Image:           settings.Image,
						ImagePullPolicy: settings.PullPolicy,
						Args: []string{
							"worker",
							"--namespace", imp.Namespace,
							"--import", imp.Name,
							"--stage", string(stage),
							"--secrets-dir", SecretsDir,
							"--source-dir", SourceDir,
						},
						Env:                    []corev1.EnvVar{{Name: EnvDirectory, Value: string(dirJSON)}},
						Resources:              resources,
						VolumeMounts:           mounts,
						TerminationMessagePath: TerminationLogPath,
						// The file only: the worker writes one value-free line
						// there; its log, which a crash would put there
						// instead, is not made for a status.
						TerminationMessagePolicy: corev1.TerminationMessageReadFile,
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr.To(true),
							RunAsUser:                ptr.To(WorkerUID),
							ReadOnlyRootFilesystem:   ptr.To(true),
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
					Volumes: volumes,
				},
			},
		},
	}
	return job, nil
}

// SecretNames lists, sorted and without repeats, every Secret the worker
// of imp needs: those the directory's spec refers to and those of the
// import's source.
func SecretNames(imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory) []string {
	set := map[string]bool{}
	add := func(name string) {
		if name != "" {
			set[name] = true
		}
	}
	if s := dir.Spec.SCIM; s != nil {
		if s.Auth.BearerToken != nil {
			add(s.Auth.BearerToken.Name)
		}
		if s.Auth.Basic != nil {
			add(s.Auth.Basic.Name)
		}
		if s.Auth.OAuth2 != nil {
			add(s.Auth.OAuth2.ClientSecretRef.Name)
		}
		if s.CABundle != nil {
			add(s.CABundle.Name)
		}
	}
	if l := dir.Spec.LDAP; l != nil {
		add(l.BindPassword.Name)
		if l.CABundle != nil {
			add(l.CABundle.Name)
		}
	}
	if q := dir.Spec.SQL; q != nil {
		add(q.DSN.Name)
	}
	// The relay's Secrets reach only workers that send mail.
	if m := dir.Spec.Mail; m != nil && imp.Spec.Invitations.Enabled() {
		if m.AuthPassword != nil {
			add(m.AuthPassword.Name)
		}
		if m.CABundle != nil {
			add(m.CABundle.Name)
		}
	}
	src := imp.Spec.Source
	if src.Secret != nil {
		add(src.Secret.Name)
	}
	for _, n := range SourceSecrets(src) {
		add(n)
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SourceSecrets names the Secrets a source reads credentials, host keys
// or certificates from (not the file of a secret source), sorted.
func SourceSecrets(src v1alpha1.ImportSource) []string {
	var names []string
	add := func(ref *v1alpha1.SecretKeyRef) {
		if ref != nil {
			names = append(names, ref.Name)
		}
	}
	addObject := func(ref *v1alpha1.LocalObjectReference) {
		if ref != nil {
			names = append(names, ref.Name)
		}
	}
	if h := src.HTTP; h != nil {
		add(h.CABundle)
		addObject(h.BasicAuth)
		add(h.BearerToken)
	}
	if f := src.SFTP; f != nil {
		addObject(&f.Credentials)
		add(f.KnownHosts)
	}
	if b := src.S3; b != nil {
		addObject(b.Credentials)
		add(b.CABundle)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "" })
	slices.Sort(names)
	return slices.Compact(names)
}

// TmpSize bounds the worker's /tmp: room for the sorted runs a large
// file spills, and the copy of an http source (at most its maxBytes).
func TmpSize(imp *v1alpha1.UserImport) resource.Quantity {
	size := int64(2 << 30)
	if h := imp.Spec.Source.HTTP; h != nil {
		if h.MaxBytes > 0 {
			size += h.MaxBytes
		} else {
			size += v1alpha1.DefaultHTTPMaxBytes
		}
	}
	return *resource.NewQuantity(size, resource.BinarySI)
}

// volumes returns the worker's volumes and mounts: /tmp, one read-only
// Secret volume per Secret under SecretsDir, the invitation templates
// under TemplatesDir, and the source file of a ConfigMap or Secret source
// (or the PersistentVolumeClaim of a claim source) under SourceDir.
func volumes(imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory) ([]corev1.Volume, []corev1.VolumeMount) {
	tmpSize := TmpSize(imp)
	vols := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &tmpSize}}}}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: TmpDir}}

	for i, name := range SecretNames(imp, dir) {
		v := fmt.Sprintf("secret-%d", i)
		vols = append(vols, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: name, DefaultMode: ptr.To[int32](0o440)},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: v, MountPath: SecretsDir + "/" + name, ReadOnly: true})
	}

	if t := imp.Spec.Invitations.Templates; t != nil && imp.Spec.Invitations.Enabled() {
		vols = append(vols, corev1.Volume{Name: "templates", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: t.Name},
				DefaultMode:          ptr.To[int32](0o440),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "templates", MountPath: TemplatesDir + "/" + t.Name, ReadOnly: true})
	}

	src := imp.Spec.Source
	items := func(key string) []corev1.KeyToPath {
		return []corev1.KeyToPath{{Key: key, Path: SourceFile}}
	}
	switch {
	case src.ConfigMap != nil:
		vols = append(vols, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: src.ConfigMap.Name},
				Items:                items(src.ConfigMap.Key),
				DefaultMode:          ptr.To[int32](0o440),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: SourceDir, ReadOnly: true})
	case src.Secret != nil:
		vols = append(vols, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  src.Secret.Name,
				Items:       items(src.Secret.Key),
				DefaultMode: ptr.To[int32](0o440),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: SourceDir, ReadOnly: true})
	case src.PersistentVolumeClaim != nil:
		// Read-only: the import never changes the files of a claim.
		vols = append(vols, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: src.PersistentVolumeClaim.ClaimName, ReadOnly: true},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: SourceDir, ReadOnly: true})
	}
	return vols, mounts
}

// ownerRef makes imp the controller of an object, so that the object is
// garbage-collected with it and its events reach the import's reconciler.
func ownerRef(imp *v1alpha1.UserImport) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         v1alpha1.GroupVersion.String(),
		Kind:               "UserImport",
		Name:               imp.Name,
		UID:                imp.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

func copyInt32(p *int32) *int32 {
	if p == nil {
		return nil
	}
	return ptr.To(*p)
}

func copyLabels(l map[string]string) map[string]string {
	c := make(map[string]string, len(l))
	for k, v := range l {
		c[k] = v
	}
	return c
}

// SafetyStop is the termination message of a full import that stopped
// before writing because it would deprovision more users than allowed.
type SafetyStop struct {
	SafetyStop   bool  `json:"safetyStop"`
	Deprovisions int64 `json:"deprovisions"`
	ManagedUsers int64 `json:"managedUsers"`
	// DeprovisionStop and MembershipStop say which threshold stopped the
	// import; a message with neither is a deprovision stop.
	DeprovisionStop    bool  `json:"deprovisionStop,omitempty"`
	MembershipStop     bool  `json:"membershipStop,omitempty"`
	MembershipRemovals int64 `json:"membershipRemovals,omitempty"`
	ManagedMemberships int64 `json:"managedMemberships,omitempty"`
	// UnreadableLines is the number of lines of the file whose identity
	// could not be read: with any, a full import proves nobody absent
	// without approval, whatever the thresholds.
	UnreadableLines int64 `json:"unreadableLines,omitempty"`
	// CodeStop says that an import with recoveryCodes.generate All waits
	// for approvedRecoveryCodes to equal Codes, the codes its preview
	// counted (-1: there is no preview).
	CodeStop bool  `json:"codeStop,omitempty"`
	Codes    int64 `json:"codes,omitempty"`
}

// ParseSafetyStop reads a worker's termination message; it returns nil
// when the message is not a safety stop.
func ParseSafetyStop(msg string) *SafetyStop {
	return parseTermination(msg, func(s SafetyStop) bool { return s.SafetyStop })
}

// parseTermination reads a termination message that is a JSON object of
// type T, which is says is one; nil for any other message.
func parseTermination[T any](msg string, is func(T) bool) *T {
	msg = strings.TrimSpace(msg)
	if !strings.HasPrefix(msg, "{") {
		return nil
	}
	var v T
	if err := json.Unmarshal([]byte(msg), &v); err != nil || !is(v) {
		return nil
	}
	return &v
}

// TerminationMessage is the termination message of s.
func (s SafetyStop) TerminationMessage() string {
	s.SafetyStop = true
	b, _ := json.Marshal(s)
	return string(b)
}

// Sentence tells a person what the full import of spec would do and how
// to approve it: the UserImport's condition and the one-off worker say
// the same.
func (s SafetyStop) Sentence(spec v1alpha1.UserImportSpec) string {
	var parts []string
	if s.UnreadableLines > 0 {
		lines := fmt.Sprintf("%d lines of the file have", s.UnreadableLines)
		if s.UnreadableLines == 1 {
			lines = "1 line of the file has"
		}
		parts = append(parts, lines+" no readable identity (see the errors), so the import cannot tell whether their users are absent")
	}
	if s.DeprovisionStop || (!s.MembershipStop && !s.CodeStop) {
		parts = append(parts, s.deprovisionSentence(spec))
	}
	if s.CodeStop && s.Codes < 0 {
		parts = append(parts, "recoveryCodes.generate All replaces the code of every user of the file: a preview counts them first")
	} else if s.CodeStop {
		parts = append(parts, fmt.Sprintf("the import would give %d users new recovery codes (recoveryCodes.generate All), replacing the codes they have; set spec.safety.approvedRecoveryCodes: %d to approve", s.Codes, s.Codes))
	}
	if s.MembershipStop {
		parts = append(parts, s.membershipSentence(spec))
	}
	return strings.Join(parts, "; ")
}

func (s SafetyStop) membershipSentence(spec v1alpha1.UserImportSpec) string {
	pct := 0.0
	if s.ManagedMemberships > 0 {
		pct = float64(s.MembershipRemovals) * 100 / float64(s.ManagedMemberships)
	}
	var limits []string
	if m := spec.Safety.MaxMembershipRemovals; m != nil {
		limits = append(limits, fmt.Sprintf("%d memberships", *m))
	}
	if p := spec.Safety.MaxMembershipRemovalPercent; p != nil {
		limits = append(limits, fmt.Sprintf("%d %%", *p))
	}
	limit := strings.Join(limits, " or ")
	if limit == "" {
		limit = "the configured limit"
	}
	over := "over the threshold of " + limit
	if s.UnreadableLines > 0 {
		over = "which needs approval"
	}
	return fmt.Sprintf("the import would remove %d of %d memberships of managed groups (%.0f %%), %s; set spec.safety.approvedMembershipRemovals: %d to approve",
		s.MembershipRemovals, s.ManagedMemberships, pct, over, s.MembershipRemovals)
}

func (s SafetyStop) deprovisionSentence(spec v1alpha1.UserImportSpec) string {
	pct := 0.0
	if s.ManagedUsers > 0 {
		pct = float64(s.Deprovisions) * 100 / float64(s.ManagedUsers)
	}
	limit := ""
	if m := spec.Safety.MaxDeprovision; m != nil {
		limit = fmt.Sprintf("%d users", *m)
	}
	if p := spec.Safety.MaxDeprovisionPercent; p != nil {
		if limit != "" {
			limit += " or "
		}
		limit += fmt.Sprintf("%d %%", *p)
	}
	if limit == "" {
		limit = "the configured limit"
	}
	verb := "deactivate"
	if spec.MissingUsers == v1alpha1.MissingDelete {
		verb = "delete"
	}
	over := "over the threshold of " + limit
	if s.UnreadableLines > 0 {
		over = "which needs approval"
	}
	return fmt.Sprintf("a full import would %s %d of %d managed users (%.0f %%), %s; set spec.safety.approvedDeprovisions: %d to approve",
		verb, s.Deprovisions, s.ManagedUsers, pct, over, s.Deprovisions)
}

// Rejection says that a worker refused the import's spec or file before
// writing anything: the import waits for an edit (or, for Reason
// SourceNotFound, for its source) instead of failing. It is an error, and
// a Job's termination message.
type Rejection struct {
	Rejected bool   `json:"rejected"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
	// SHA256 is the sha256 of the file refused; empty when the run
	// stopped before reading it.
	SHA256 string `json:"sha256,omitempty"`
}

func (r *Rejection) Error() string { return r.Message }

// TerminationMessage is the termination message of r.
func (r Rejection) TerminationMessage() string {
	r.Rejected = true
	b, _ := json.Marshal(r)
	return string(b)
}

// ParseRejection reads a worker's termination message; it returns nil
// when the message is not a rejection.
func ParseRejection(msg string) *Rejection {
	return parseTermination(msg, func(r Rejection) bool { return r.Rejected })
}

// ExitRejected is the exit status of a worker that refused its input: the
// Job fails at once (podFailurePolicy) instead of retrying what would be
// refused again.
const ExitRejected = 5

// CheckIdentity refuses an import whose identity entry writes another
// attribute than the one its directory identifies users by: rows would be
// matched by one attribute and looked up by another, so every user would
// look new.
func CheckIdentity(spec v1alpha1.UserImportSpec, dir v1alpha1.UserDirectorySpec) error {
	for _, m := range spec.Mapping {
		if m.Identity && m.Attribute != dir.IdentityAttribute {
			return fmt.Errorf("spec.mapping: the identity entry maps attribute %q, but UserDirectory %s identifies users by %q",
				m.Attribute, spec.DirectoryRef.Name, dir.IdentityAttribute)
		}
	}
	return nil
}

// SourceChanged begins the message of a worker that refused to import a
// file other than the one its preview was made of.
const SourceChanged = "SourceChanged"

// SourceChangedError says that the source is not the file the preview
// (or --expect-sha256) named. Nothing was written.
type SourceChangedError struct {
	// Got identifies the file fetched, Want the one expected: the sha256
	// of a copied file's content, the fingerprint of a file read in place.
	Got, Want string
	// Templates says that the invitation templates, not the file, differ
	// from the preview's (Got and Want are their sha256).
	Templates bool
}

func (e *SourceChangedError) Error() string {
	if e.Templates {
		return fmt.Sprintf("%s: the invitation templates are %s, but the preview rendered %s; nothing was written", SourceChanged, e.Got, e.Want)
	}
	return fmt.Sprintf("%s: the source is %s, but the preview was made of the file %s; nothing was written", SourceChanged, e.Got, e.Want)
}

// IsSourceChanged tells whether a worker's message is a SourceChangedError.
func IsSourceChanged(msg string) bool {
	return strings.HasPrefix(strings.TrimSpace(msg), SourceChanged+": ")
}

// SpecDigest identifies what an import reads and writes: its spec with
// spec.action aside. A preview stays valid while the digest is the same.
func SpecDigest(spec v1alpha1.UserImportSpec) string {
	spec.Action = ""
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
