// Package integration_test runs the operator's controllers in a real
// manager against one real API server (envtest) and a real SCIM server.
// No Job controller runs in envtest: the specs play the worker (status
// patches, pod termination messages) and set the Job conditions by hand.
//
// Every spec gets a namespace of its own. One manager runs at a time: the
// whole operator for most specs; the ImportSchedule controller alone, on
// a clock the specs set, for those labelled schedulesAlone; none for
// those labelled apiServerAlone (what the API server itself enforces).
package integration_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

var (
	env       *testenv.Env
	cfg       *rest.Config
	k8sClient client.Client // not cached: what the API server holds now
	ctx       = context.Background()
	scim      *scimserver.Server
	nsCounter atomic.Int32

	stopManager func()
	running     managerKind
)

// managerKind is the manager that runs.
type managerKind int

const (
	operatorManager managerKind = iota // controllers.Setup, any options
	schedulesAlone                     // startScheduleManager
	noManager
	customManager // one a spec built
)

// The labels that choose another manager than the operator's.
const (
	labelSchedulesAlone = "schedulesAlone"
	labelAPIServerAlone = "apiServerAlone"
)

const scimToken = "envtest-token"

var jobSettings = jobs.Settings{Image: "registry.example/user-import-operator:test", PullPolicy: corev1.PullIfNotPresent}

func TestIntegration(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Integration suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	// What a controller does may wait for its manager to start (specs
	// switch managers) and for a machine busy with other tests: an
	// Eventually without a timeout of its own waits up to 20 s, not 1 s.
	SetDefaultEventuallyTimeout(20 * time.Second)
	var err error
	env, err = testenv.New("")
	Expect(err).NotTo(HaveOccurred())
	cfg, k8sClient = env.Config, env.Client

	scim, err = scimserver.StartProcess(scimserver.Options{Token: scimToken, Stderr: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred(), "the SCIM test server must run: hack/peers/install-scim.sh installs it")

	setUpAPIServerSpecs()
	stopManager = startOperator()
})

// Before each spec, the manager it wants runs. Ginkgo keeps the specs of
// a container together, so the manager changes a few times per run, not
// per spec.
var _ = BeforeEach(func() {
	want := operatorManager
	switch labels := CurrentSpecReport().Labels(); {
	case slices.Contains(labels, labelSchedulesAlone):
		want = schedulesAlone
	case slices.Contains(labels, labelAPIServerAlone):
		want = noManager
	}
	if running == want {
		return
	}
	stopManager()
	switch want {
	case operatorManager:
		stopManager = startOperator()
	case schedulesAlone:
		stopManager = startScheduleManager()
	default:
		stopManager, running = func() {}, noManager
	}
})

// startOperator runs the operator's manager as most specs want it.
func startOperator() func() {
	return startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings})
}

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
	}
	if scim != nil {
		scim.Stop()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// startManager runs a manager with the controllers and returns a function
// that stops it and waits until it stopped. With watch, every call of the
// manager's client goes through those functions first.
func startManager(o controllers.Options, watch ...interceptor.Funcs) func() {
	o.DirectoryRetryInterval = time.Second
	o.PollInterval = time.Second
	opts := testenv.ManagerOptions()
	for _, funcs := range watch {
		opts.NewClient = func(c *rest.Config, co client.Options) (client.Client, error) {
			cl, err := client.NewWithWatch(c, co)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(cl, funcs), nil
		}
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(mgr, o)).To(Succeed())
	stop := testenv.RunManager(ctx, mgr)
	running = operatorManager
	return func() { Expect(stop()).To(Succeed()) }
}

// newNamespace creates a namespace of its own for a spec.
func newNamespace() string {
	return namespaceFor(fmt.Sprintf("ctrl-%d", nsCounter.Add(1)))
}

// namespaceFor creates namespace name for the spec under way. When the
// spec (or its container) ends, its schedules and imports are deleted
// (envtest runs no namespace or garbage collector): the manager of a
// later spec, which watches every namespace, has none of them to work
// through.
func namespaceFor(name string) string {
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	DeferCleanup(func() {
		for _, o := range []client.Object{&uiov1.ImportSchedule{}, &uiov1.UserImport{}} {
			Expect(client.IgnoreNotFound(k8sClient.DeleteAllOf(ctx, o, client.InNamespace(name)))).To(Succeed())
		}
	})
	return name
}

// readyDirectory creates a SCIM directory backed by the test server, with
// its token Secret, and waits until it is Ready.
func readyDirectory(ns, name string) *uiov1.UserDirectory {
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-token", Namespace: ns},
		Data:       map[string][]byte{"token": []byte(scimToken)},
	})).To(Succeed())
	dir := scimDirectory(ns, name, scim.URL, name+"-token")
	Expect(k8sClient.Create(ctx, dir)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(dir.Status.Conditions, uiov1.ConditionReady)).To(BeTrue(), "conditions %+v", dir.Status.Conditions)
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	return dir
}

func scimDirectory(ns, name, url, tokenSecret string) *uiov1.UserDirectory {
	return &uiov1.UserDirectory{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: uiov1.UserDirectorySpec{
			SCIM: &uiov1.SCIMDirectory{
				URL: url,
				// The test server may speak http.
				Insecure: strings.HasPrefix(url, "http://"),
				Auth:     uiov1.SCIMAuth{BearerToken: &uiov1.SecretKeyRef{Name: tokenSecret, Key: "token"}},
			},
			IdentityAttribute: "userName",
		},
	}
}

// newImport creates an import of the ConfigMap hr-export (created with it
// when missing), as a worker's specs play it.
func newImport(ns, name, dir string, action uiov1.ImportAction) *uiov1.UserImport {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "hr-export", Namespace: ns},
		Data:       map[string]string{"export.csv": "email,first_name\n"},
	}
	if err := k8sClient.Create(ctx, cm); !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	imp := &uiov1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: uiov1.UserImportSpec{
			DirectoryRef: uiov1.LocalObjectReference{Name: dir},
			Source:       uiov1.ImportSource{ConfigMap: &uiov1.ConfigMapKeyRef{Name: "hr-export", Key: "export.csv"}},
			Mapping: []uiov1.AttributeMapping{
				{Attribute: "userName", Column: "email", Identity: true},
				{Attribute: "name.givenName", Column: "first_name"},
			},
			Action: action,
		},
	}
	Expect(k8sClient.Create(ctx, imp)).To(Succeed())
	return imp
}

func getImport(imp *uiov1.UserImport) *uiov1.UserImport {
	out := &uiov1.UserImport{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(imp), out)).To(Succeed())
	return out
}

// expectPhase waits until imp reaches phase.
func expectPhase(imp *uiov1.UserImport, phase uiov1.ImportPhase) *uiov1.UserImport {
	GinkgoHelper()
	out := &uiov1.UserImport{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(imp), out)).To(Succeed())
		g.Expect(out.Status.Phase).To(Equal(phase), "conditions %+v", out.Status.Conditions)
	}, 15*time.Second, 50*time.Millisecond).Should(Succeed())
	return out
}

// setAction changes spec.action (an edit by a person).
func setAction(imp *uiov1.UserImport, action uiov1.ImportAction) {
	GinkgoHelper()
	Eventually(func() error {
		cur := getImport(imp)
		cur.Spec.Action = action
		return k8sClient.Update(ctx, cur)
	}).Should(Succeed())
}

// editSpec applies fn to the spec (an edit by a person).
func editSpec(imp *uiov1.UserImport, fn func(*uiov1.UserImportSpec)) {
	GinkgoHelper()
	Eventually(func() error {
		cur := getImport(imp)
		fn(&cur.Spec)
		return k8sClient.Update(ctx, cur)
	}).Should(Succeed())
}

// job waits for the Job of stage of imp and returns it.
func job(imp *uiov1.UserImport, stage runcontract.Stage) *batchv1.Job {
	GinkgoHelper()
	cur := getImport(imp)
	j := &batchv1.Job{}
	Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: cur.Namespace, Name: jobs.JobName(cur, stage)}, j)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	return j
}

// jobsOf lists the Jobs of imp.
func jobsOf(imp *uiov1.UserImport) []batchv1.Job {
	var list batchv1.JobList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(imp.Namespace),
		client.MatchingLabels{jobs.LabelInstance: imp.Name})).To(Succeed())
	return list.Items
}

// workerPatch patches the import's status as the worker does: fresh get,
// merge patch, retry on conflict.
func workerPatch(imp *uiov1.UserImport, fn func(*uiov1.UserImportStatus)) {
	GinkgoHelper()
	Eventually(func() error {
		cur := getImport(imp)
		orig := cur.DeepCopy()
		fn(&cur.Status)
		return k8sClient.Status().Patch(ctx, cur, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	}).Should(Succeed())
}

// workerPreview writes a preview for the generation the worker read.
func workerPreview(imp *uiov1.UserImport, counts uiov1.ChangeCounts, managed int64) {
	gen := getImport(imp).Generation
	now := metav1.Now()
	workerPatch(imp, func(s *uiov1.UserImportStatus) {
		s.Preview = &uiov1.PreviewStatus{Generation: gen, Counts: counts, ManagedUsers: managed, CompletionTime: &now}
	})
}

// workerPinnedPreview writes a preview as the worker does: for the spec
// it read, pinned to the sha256 of the file it read.
func workerPinnedPreview(imp *uiov1.UserImport, counts uiov1.ChangeCounts, sha256 string) {
	cur := getImport(imp)
	now := metav1.Now()
	workerPatch(imp, func(s *uiov1.UserImportStatus) {
		s.Preview = &uiov1.PreviewStatus{Generation: cur.Generation, Counts: counts,
			SHA256: sha256, SpecDigest: runcontract.SpecDigest(cur.Spec), CompletionTime: &now}
	})
}

// workerPod creates the pod of a Job whose worker container ended with
// exitCode and message, as the kubelet would report it.
func workerPod(j *batchv1.Job, exitCode int32, message string) {
	GinkgoHelper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: j.Name + "-pod", Namespace: j.Namespace,
			Labels: map[string]string{jobs.JobNameLabel: j.Name, jobs.JobUIDLabel: string(j.UID)},
		},
		Spec: *j.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.ServiceAccountName = ""
	pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	now := metav1.Now()
	pod.Status.Phase = corev1.PodSucceeded
	if exitCode != 0 {
		pod.Status.Phase = corev1.PodFailed
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: jobs.ContainerName, Image: j.Spec.Template.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exitCode, Message: message, StartedAt: now, FinishedAt: now,
		}},
	}}
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}

// finishJob sets the conditions the Job controller would set at the end.
func finishJob(j *batchv1.Job, succeeded bool) {
	GinkgoHelper()
	Eventually(func() error {
		cur := &batchv1.Job{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(j), cur); err != nil {
			return err
		}
		now := metav1.Now()
		cur.Status.StartTime = &now
		cond := func(t batchv1.JobConditionType, reason string) batchv1.JobCondition {
			return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: "set by the test", LastProbeTime: now, LastTransitionTime: now}
		}
		if succeeded {
			cur.Status.Succeeded = 1
			cur.Status.CompletionTime = &now
			cur.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached"), cond(batchv1.JobComplete, "CompletionsReached")}
		} else {
			cur.Status.Failed = 1
			cur.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "BackoffLimitExceeded"), cond(batchv1.JobFailed, "BackoffLimitExceeded")}
		}
		return k8sClient.Status().Update(ctx, cur)
	}).Should(Succeed())
}

// eventsFor lists the notes of the Events about obj with reason (any
// reason when "").
func eventsFor(ns, name, reason string) []string {
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && (e.Reason == reason || reason == "") {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func condition(imp *uiov1.UserImport, t string) *metav1.Condition {
	return meta.FindStatusCondition(imp.Status.Conditions, t)
}

// setAnnotation sets an annotation of imp, which wakes its reconciler
// without a new generation.
func setAnnotation(imp *uiov1.UserImport, key, value string) {
	GinkgoHelper()
	Eventually(func() error {
		cur := getImport(imp)
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[key] = value
		return k8sClient.Update(ctx, cur)
	}).Should(Succeed())
}
