package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/runcontract"
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
func Build(imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory, stage runcontract.Stage, settings Settings) (*batchv1.Job, error) {
	if stage != runcontract.StagePreview && stage != runcontract.StageImport {
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
					Values:        []int32{runcontract.ExitRejected},
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
							"--secrets-dir", runcontract.SecretsDir,
							"--source-dir", runcontract.SourceDir,
						},
						Env:                    []corev1.EnvVar{{Name: runcontract.EnvDirectory, Value: string(dirJSON)}},
						Resources:              resources,
						VolumeMounts:           mounts,
						TerminationMessagePath: runcontract.TerminationLogPath,
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

// volumes returns the worker's volumes and mounts (the paths of
// runcontract): /tmp, one read-only Secret volume per Secret under
// SecretsDir, the invitation templates under TemplatesDir, and the source
// file of a ConfigMap or Secret source (or the PersistentVolumeClaim of a
// claim source) under SourceDir.
func volumes(imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory) ([]corev1.Volume, []corev1.VolumeMount) {
	tmpSize := TmpSize(imp)
	vols := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &tmpSize}}}}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: runcontract.TmpDir}}

	for i, name := range SecretNames(imp, dir) {
		v := fmt.Sprintf("secret-%d", i)
		vols = append(vols, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: name, DefaultMode: ptr.To[int32](0o440)},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: v, MountPath: runcontract.SecretsDir + "/" + name, ReadOnly: true})
	}

	if t := imp.Spec.Invitations.Templates; t != nil && imp.Spec.Invitations.Enabled() {
		vols = append(vols, corev1.Volume{Name: "templates", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: t.Name},
				DefaultMode:          ptr.To[int32](0o440),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "templates", MountPath: runcontract.TemplatesDir + "/" + t.Name, ReadOnly: true})
	}

	src := imp.Spec.Source
	items := func(key string) []corev1.KeyToPath {
		return []corev1.KeyToPath{{Key: key, Path: runcontract.SourceFile}}
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
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: runcontract.SourceDir, ReadOnly: true})
	case src.Secret != nil:
		vols = append(vols, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  src.Secret.Name,
				Items:       items(src.Secret.Key),
				DefaultMode: ptr.To[int32](0o440),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: runcontract.SourceDir, ReadOnly: true})
	case src.PersistentVolumeClaim != nil:
		// Read-only: the import never changes the files of a claim.
		vols = append(vols, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: src.PersistentVolumeClaim.ClaimName, ReadOnly: true},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: runcontract.SourceDir, ReadOnly: true})
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
