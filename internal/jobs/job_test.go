package jobs

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

func fixture() (*v1alpha1.UserImport, *v1alpha1.UserDirectory) {
	imp := &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Name: "hr-march", Namespace: "people", UID: "0b7c-uid"},
		Spec: v1alpha1.UserImportSpec{
			DirectoryRef: v1alpha1.LocalObjectReference{Name: "corp"},
			Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr-export", Key: "export.csv"}},
		},
	}
	dir := &v1alpha1.UserDirectory{
		ObjectMeta: metav1.ObjectMeta{Name: "corp", Namespace: "people"},
		Spec: v1alpha1.UserDirectorySpec{
			SCIM: &v1alpha1.SCIMDirectory{
				URL:      "https://idp.example/scim/v2",
				Auth:     v1alpha1.SCIMAuth{BearerToken: &v1alpha1.SecretKeyRef{Name: "scim-token", Key: "token"}},
				CABundle: &v1alpha1.SecretKeyRef{Name: "scim-ca", Key: "ca.crt"},
			},
			IdentityAttribute: "userName",
			Execution: v1alpha1.ExecutionSettings{
				BackoffLimit:          ptr.To[int32](5),
				ActiveDeadlineSeconds: ptr.To[int64](600),
			},
		},
	}
	return imp, dir
}

var settings = Settings{Image: "registry.example/uio:v1", PullPolicy: corev1.PullIfNotPresent, TTLSecondsAfterFinished: ptr.To[int32](3600)}

func TestBuildJob(t *testing.T) {
	imp, dir := fixture()
	job, err := Build(imp, dir, runcontract.StageImport, settings)
	if err != nil {
		t.Fatal(err)
	}
	if job.Name != JobName(imp, runcontract.StageImport) || !strings.HasPrefix(job.Name, "hr-march-import-") || job.Namespace != "people" {
		t.Errorf("name %s/%s", job.Namespace, job.Name)
	}
	if o := job.OwnerReferences; len(o) != 1 || o[0].Kind != "UserImport" || o[0].UID != imp.UID || !*o[0].Controller {
		t.Errorf("owner references %+v", o)
	}
	wantLabels := map[string]string{
		"app.kubernetes.io/name": "user-import-operator", "app.kubernetes.io/instance": "hr-march",
		"app.kubernetes.io/component": "import", "app.kubernetes.io/managed-by": "user-import-operator",
	}
	if !reflect.DeepEqual(job.Labels, wantLabels) || !reflect.DeepEqual(job.Spec.Template.Labels, wantLabels) {
		t.Errorf("labels job %v pod %v", job.Labels, job.Spec.Template.Labels)
	}
	if p := job.Spec.PodReplacementPolicy; p == nil || *p != batchv1.Failed {
		t.Errorf("podReplacementPolicy %v, want Failed: a terminating worker must stop before the next one starts", p)
	}
	if *job.Spec.BackoffLimit != 5 || *job.Spec.ActiveDeadlineSeconds != 600 || *job.Spec.TTLSecondsAfterFinished != 3600 {
		t.Errorf("limits %v %v %v", *job.Spec.BackoffLimit, *job.Spec.ActiveDeadlineSeconds, *job.Spec.TTLSecondsAfterFinished)
	}
	pod := job.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever || pod.ServiceAccountName != "userimport-worker-hr-march" || !*pod.AutomountServiceAccountToken {
		t.Errorf("pod spec %s %s", pod.RestartPolicy, pod.ServiceAccountName)
	}
	psc := pod.SecurityContext
	if !*psc.RunAsNonRoot || *psc.RunAsUser != 65532 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if !*sc.RunAsNonRoot || *sc.RunAsUser != 65532 || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		!reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container security context %+v", sc)
	}
	if c.Image != settings.Image || c.ImagePullPolicy != corev1.PullIfNotPresent || c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
		t.Errorf("container %s %s %s", c.Image, c.ImagePullPolicy, c.TerminationMessagePolicy)
	}
	wantArgs := []string{"worker", "--namespace", "people", "--import", "hr-march", "--stage", "Import",
		"--secrets-dir", "/var/run/userimport/secrets", "--source-dir", "/var/run/userimport/source"}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("args %v", c.Args)
	}
	if c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Requests.Memory().String() != "128Mi" || c.Resources.Limits.Memory().String() != "512Mi" {
		t.Errorf("default resources %v", c.Resources)
	}
	if len(c.Env) != 1 || c.Env[0].Name != runcontract.EnvDirectory {
		t.Fatalf("env %v", c.Env)
	}
	var spec v1alpha1.UserDirectorySpec
	if err := json.Unmarshal([]byte(c.Env[0].Value), &spec); err != nil || !reflect.DeepEqual(spec, dir.Spec) {
		t.Errorf("UIO_DIRECTORY does not round-trip to the directory spec: %v", err)
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if m, ok := mounts["/tmp"]; !ok || vols[m.Name].EmptyDir == nil {
		t.Errorf("no emptyDir at /tmp")
	}
	for _, s := range []string{"scim-token", "scim-ca"} {
		m, ok := mounts[runcontract.SecretsDir+"/"+s]
		if !ok || !m.ReadOnly || vols[m.Name].Secret == nil || vols[m.Name].Secret.SecretName != s {
			t.Errorf("secret %s not mounted read-only under %s: %+v", s, runcontract.SecretsDir, m)
		}
	}
	src, ok := mounts[runcontract.SourceDir]
	if !ok || !src.ReadOnly {
		t.Fatalf("source not mounted read-only at %s", runcontract.SourceDir)
	}
	cm := vols[src.Name].ConfigMap
	if cm == nil || cm.Name != "hr-export" || !reflect.DeepEqual(cm.Items, []corev1.KeyToPath{{Key: "export.csv", Path: "data.csv"}}) {
		t.Errorf("source volume %+v", vols[src.Name])
	}
	if len(pod.Volumes) != 4 {
		t.Errorf("want tmp, 2 secrets and the source, got %d volumes", len(pod.Volumes))
	}

	again, _ := Build(imp, dir, runcontract.StageImport, settings)
	if !reflect.DeepEqual(job, again) {
		t.Error("Build is not deterministic")
	}
}

func TestBuildSecretSourceAndResources(t *testing.T) {
	imp, dir := fixture()
	imp.Spec.Source = v1alpha1.ImportSource{Secret: &v1alpha1.SecretKeyRef{Name: "hr-secret", Key: "f.csv"}}
	dir.Spec.SCIM = nil
	dir.Spec.SQL = &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres, DSN: v1alpha1.SecretKeyRef{Name: "pg", Key: "dsn"}, Table: "users"}
	dir.Spec.Execution.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
	job, err := Build(imp, dir, runcontract.StagePreview, settings)
	if err != nil {
		t.Fatal(err)
	}
	if job.Labels[LabelComponent] != "preview" || job.Name == JobName(imp, runcontract.StageImport) {
		t.Errorf("preview job %s labels %v", job.Name, job.Labels)
	}
	c := job.Spec.Template.Spec.Containers[0]
	if c.Resources.Limits.Memory().String() != "2Gi" || len(c.Resources.Requests) != 0 {
		t.Errorf("resources %v", c.Resources)
	}
	var sawSource, sawDSN bool
	for _, v := range job.Spec.Template.Spec.Volumes {
		if s := v.Secret; s != nil && s.SecretName == "hr-secret" && len(s.Items) == 1 && s.Items[0].Path == runcontract.SourceFile {
			sawSource = true
		}
		if s := v.Secret; s != nil && s.SecretName == "pg" {
			sawDSN = true
		}
	}
	if !sawSource || !sawDSN {
		t.Errorf("source secret %v, dsn secret %v", sawSource, sawDSN)
	}
	if !reflect.DeepEqual(SecretNames(imp, dir), []string{"hr-secret", "pg"}) {
		t.Errorf("secret names %v", SecretNames(imp, dir))
	}
}

// A claim is mounted read-only where the worker looks for it; the Secrets
// of SFTP and S3 sources reach the worker, and nothing else of theirs.
func TestBuildInPlaceSources(t *testing.T) {
	imp, dir := fixture()
	imp.Spec.Source = v1alpha1.ImportSource{PersistentVolumeClaim: &v1alpha1.PVCSource{ClaimName: "exports", FileSelector: v1alpha1.FileSelector{Pattern: "*.csv"}}}
	job, err := Build(imp, dir, runcontract.StageImport, settings)
	if err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	var claim *corev1.Volume
	for i, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = &pod.Volumes[i]
		}
	}
	if claim == nil || claim.PersistentVolumeClaim.ClaimName != "exports" || !claim.PersistentVolumeClaim.ReadOnly {
		t.Fatalf("claim volume %+v", claim)
	}
	var mounted bool
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.Name == claim.Name {
			mounted = m.MountPath == runcontract.SourceDir && m.ReadOnly
		}
	}
	if !mounted {
		t.Errorf("the claim is not mounted read-only at %s", runcontract.SourceDir)
	}

	imp.Spec.Source = v1alpha1.ImportSource{SFTP: &v1alpha1.SFTPSource{Host: "sftp.example.com", Credentials: v1alpha1.LocalObjectReference{Name: "sftp-login"},
		KnownHosts: &v1alpha1.SecretKeyRef{Name: "sftp-hosts", Key: "known_hosts"}}}
	if got := SecretNames(imp, dir); !slices.Contains(got, "sftp-login") || !slices.Contains(got, "sftp-hosts") {
		t.Errorf("secret names %v", got)
	}
	imp.Spec.Source = v1alpha1.ImportSource{S3: &v1alpha1.S3Source{Bucket: "hr", Credentials: &v1alpha1.LocalObjectReference{Name: "s3-keys"},
		CABundle: &v1alpha1.SecretKeyRef{Name: "s3-ca", Key: "ca.crt"}}}
	if got := SecretNames(imp, dir); !slices.Contains(got, "s3-keys") || !slices.Contains(got, "s3-ca") {
		t.Errorf("secret names %v", got)
	}
	job, _ = Build(imp, dir, runcontract.StageImport, settings)
	for _, m := range job.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath == runcontract.SourceDir {
			t.Errorf("an s3 source mounts %s", runcontract.SourceDir)
		}
	}
}

func TestNamesFitAndDiffer(t *testing.T) {
	imp, _ := fixture()
	imp.Name = strings.Repeat("a", 250)
	for _, s := range []runcontract.Stage{runcontract.StagePreview, runcontract.StageImport} {
		if n := JobName(imp, s); len(n) > 63 {
			t.Errorf("job name %d chars", len(n))
		}
	}
	if JobName(imp, runcontract.StagePreview) == JobName(imp, runcontract.StageImport) {
		t.Error("stages share a job name")
	}
	other := imp.DeepCopy()
	other.UID = "another-uid"
	if JobName(imp, runcontract.StageImport) == JobName(other, runcontract.StageImport) {
		t.Error("a recreated import reuses the job name of its predecessor")
	}
	if n := ServiceAccountName(imp); len(n) > 63 || !strings.HasPrefix(n, "userimport-worker-") {
		t.Errorf("service account name %q", n)
	}
	if n := ReportSecretName(imp); len(n) > 253 || !strings.HasSuffix(n, "-report") {
		t.Errorf("report secret name %q", n)
	}
	if v := Labels(imp, runcontract.StageImport)[LabelInstance]; len(v) > 63 {
		t.Errorf("instance label %d chars", len(v))
	}
}

func TestBuildRejects(t *testing.T) {
	imp, dir := fixture()
	if _, err := Build(imp, dir, "Other", settings); err == nil {
		t.Error("unknown stage accepted")
	}
	if _, err := Build(imp, dir, runcontract.StageImport, Settings{}); err == nil {
		t.Error("empty image accepted")
	}
	dir.Name = "elsewhere"
	if _, err := Build(imp, dir, runcontract.StageImport, settings); err == nil {
		t.Error("a directory other than the import's accepted")
	}
}

func TestRoleIsNarrow(t *testing.T) {
	imp, _ := fixture()
	role := Role(imp)
	for _, r := range role.Rules {
		if len(r.ResourceNames) != 1 {
			t.Errorf("rule %v is not limited to one object", r)
		}
		for _, v := range r.Verbs {
			if v == "list" || v == "watch" || v == "create" || v == "delete" || v == "*" {
				t.Errorf("rule %v grants %s", r, v)
			}
		}
		if r.Resources[0] == "secrets" && (r.ResourceNames[0] != "hr-march-report" || !reflect.DeepEqual(r.Verbs, []string{"patch"})) {
			t.Errorf("secret rule %v", r)
		}
	}
	rb := RoleBinding(imp)
	if rb.RoleRef.Name != role.Name || rb.Subjects[0].Name != ServiceAccount(imp).Name || rb.Subjects[0].Namespace != "people" {
		t.Errorf("binding %+v", rb)
	}
}

// An import with recovery codes may also create Secrets, and read and
// patch its key and as many codes Secrets as its file could fill, by name.
func TestRoleOfAnImportWithCodes(t *testing.T) {
	imp, _ := fixture()
	imp.Spec.RecoveryCodes.Generate = v1alpha1.CodesForNewUsers
	imp.Status.Source = &v1alpha1.SourceStatus{Rows: 7000}
	var names []string
	creates := 0
	for _, r := range Role(imp).Rules {
		if r.Resources[0] != "secrets" {
			continue
		}
		switch {
		case reflect.DeepEqual(r.Verbs, []string{"create"}) && len(r.ResourceNames) == 0:
			creates++
		case reflect.DeepEqual(r.Verbs, []string{"get", "patch"}):
			names = r.ResourceNames
		case reflect.DeepEqual(r.Verbs, []string{"patch"}) && reflect.DeepEqual(r.ResourceNames, []string{"hr-march-report"}):
		default:
			t.Errorf("secret rule %v", r)
		}
	}
	// 7,000 rows fill 3 Secrets of 3,000; twice that plus one, and the
	// key. The worker creates none: the controller made them.
	if creates != 0 || len(names) != 8 || names[0] != "hr-march-codes-key" || names[1] != "hr-march-codes-0" || names[7] != "hr-march-codes-6" {
		t.Errorf("create rules %d, get/patch names %v", creates, names)
	}
}

// A worker that refused its input exits runcontract.ExitRejected, which
// fails the Job at once: a retry would refuse the same input again.
func TestRejectionEndsTheJobWithoutRetries(t *testing.T) {
	imp, dir := fixture()
	job, err := Build(imp, dir, runcontract.StageImport, settings)
	if err != nil {
		t.Fatal(err)
	}
	rules := job.Spec.PodFailurePolicy.Rules
	if len(rules) != 1 || rules[0].Action != batchv1.PodFailurePolicyActionFailJob ||
		rules[0].OnExitCodes == nil || len(rules[0].OnExitCodes.Values) != 1 || rules[0].OnExitCodes.Values[0] != runcontract.ExitRejected {
		t.Fatalf("pod failure policy %+v", job.Spec.PodFailurePolicy)
	}
}

// The relay's Secrets and the templates reach only a worker that sends
// invitations.
func TestBuildMountsTheRelayOnlyForInvitations(t *testing.T) {
	imp, dir := fixture()
	dir.Spec.Mail = &v1alpha1.MailRelay{Host: "smtp.example", From: "hr@example.com",
		AuthUsername: "hr", AuthPassword: &v1alpha1.SecretKeyRef{Name: "smtp", Key: "password"}, CABundle: &v1alpha1.SecretKeyRef{Name: "smtp-ca", Key: "ca.crt"}}
	imp.Spec.Invitations.Templates = &v1alpha1.LocalObjectReference{Name: "welcome"}
	if got := SecretNames(imp, dir); !reflect.DeepEqual(got, []string{"scim-ca", "scim-token"}) {
		t.Errorf("without invitations: %v", got)
	}
	imp.Spec.Invitations.NewUsers = true
	if got := SecretNames(imp, dir); !reflect.DeepEqual(got, []string{"scim-ca", "scim-token", "smtp", "smtp-ca"}) {
		t.Errorf("with invitations: %v", got)
	}
	job, err := Build(imp, dir, runcontract.StageImport, settings)
	if err != nil {
		t.Fatal(err)
	}
	mounted := false
	for _, m := range job.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath == runcontract.TemplatesDir+"/welcome" && m.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("templates not mounted: %+v", job.Spec.Template.Spec.Containers[0].VolumeMounts)
	}
}

// The worker's /tmp is bounded, and so is its disk: an http source's
// maxBytes widens both, and a limit the directory sets is kept.
func TestWorkerDiskIsBounded(t *testing.T) {
	imp, dir := fixture()
	tmpAndLimit := func() (string, string) {
		t.Helper()
		job, err := Build(imp, dir, runcontract.StageImport, settings)
		if err != nil {
			t.Fatal(err)
		}
		var tmp string
		for _, v := range job.Spec.Template.Spec.Volumes {
			if v.Name == "tmp" && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
				tmp = v.EmptyDir.SizeLimit.String()
			}
		}
		l := job.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceEphemeralStorage]
		return tmp, l.String()
	}
	if tmp, limit := tmpAndLimit(); tmp != "2Gi" || limit != "2304Mi" {
		t.Fatalf("/tmp %q, ephemeral-storage limit %q; want 2Gi and 2304Mi", tmp, limit)
	}
	imp.Spec.Source = v1alpha1.ImportSource{HTTP: &v1alpha1.HTTPSource{URL: "https://hr.example/f.csv", MaxBytes: 5 << 30}}
	if tmp, limit := tmpAndLimit(); tmp != "7Gi" || limit != "7424Mi" {
		t.Fatalf("/tmp %q, limit %q for a 5 GiB download", tmp, limit)
	}
	dir.Spec.Execution.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("20Gi")}}
	if _, limit := tmpAndLimit(); limit != "20Gi" {
		t.Fatalf("the directory's limit became %q", limit)
	}
}
