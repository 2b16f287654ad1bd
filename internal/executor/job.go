package executor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/userimport/user-import-operator/internal/keyread/fromapi"
	"github.com/userimport/user-import-operator/internal/runcontract"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/jobs"
)

// Job runs stages in batch/v1 Jobs built by jobs.Build.
type Job struct {
	// Client creates and reads Jobs and the worker's RBAC objects; Jobs
	// are read from the manager's cache, which watches owned Jobs.
	Client client.Client
	// APIReader lists the pods of a finished Job for its termination
	// message without caching every pod of the cluster.
	APIReader client.Reader
	// Settings of the Jobs.
	Settings jobs.Settings
	// SecretSelector, when set, is what the labels of every Secret the
	// Job mounts must match (--secret-label).
	SecretSelector labels.Selector
}

var _ Executor = (*Job)(nil)

// Start creates the worker's ServiceAccount, Role and RoleBinding, then the
// Job. A Job of that name that exists already is adopted.
func (e *Job) Start(ctx context.Context, imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory, stage runcontract.Stage) error {
	if e.SecretSelector != nil {
		for _, name := range jobs.SecretNames(imp, dir) {
			if err := fromapi.CheckSecret(ctx, e.APIReader, imp.Namespace, name, e.SecretSelector); err != nil {
				return err
			}
		}
	}
	if err := e.ensureAccess(ctx, imp); err != nil {
		return err
	}
	job, err := jobs.Build(imp, dir, stage, e.Settings)
	if err != nil {
		return err
	}
	if err := e.Client.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating job %s: %w", job.Name, err)
	}
	return nil
}

// ensureAccess creates or corrects the worker's ServiceAccount, Role and
// RoleBinding.
func (e *Job) ensureAccess(ctx context.Context, imp *v1alpha1.UserImport) error {
	if err := createIfMissing(ctx, e.Client, jobs.ServiceAccount(imp)); err != nil {
		return err
	}
	if err := e.ensureRole(ctx, imp); err != nil {
		return err
	}
	return createIfMissing(ctx, e.Client, jobs.RoleBinding(imp))
}

// ensureRole creates the worker's Role, or puts its rules back as built.
func (e *Job) ensureRole(ctx context.Context, imp *v1alpha1.UserImport) error {
	want := jobs.Role(imp)
	var role rbacv1.Role
	// Uncached: a cached read would watch every Role of the cluster.
	err := e.APIReader.Get(ctx, client.ObjectKeyFromObject(want), &role)
	switch {
	case apierrors.IsNotFound(err):
		if err := e.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating role %s: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("reading role %s: %w", want.Name, err)
	case !equality.Semantic.DeepEqual(role.Rules, want.Rules):
		// Someone widened or narrowed the Role: put it back as built.
		role.Rules = want.Rules
		if err := e.Client.Update(ctx, &role); err != nil {
			return fmt.Errorf("updating role %s: %w", want.Name, err)
		}
	}
	return nil
}

func createIfMissing(ctx context.Context, c client.Client, obj client.Object) error {
	if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

// Prepare makes the Secrets of imp's codes the worker may need next and
// lets the worker's Role name them.
func (e *Job) Prepare(ctx context.Context, imp *v1alpha1.UserImport) error {
	if !imp.Spec.RecoveryCodes.Enabled() {
		return nil
	}
	if err := PrepareCodes(ctx, e.Client, e.APIReader, imp); err != nil {
		return err
	}
	return e.ensureRole(ctx, imp)
}

// Status reads the Job of stage. The outcome comes from the Job's
// Complete and Failed conditions only: status.failed counts pods that
// failed while the Job may still retry.
func (e *Job) Status(ctx context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) (StageStatus, error) {
	var job batchv1.Job
	err := e.Client.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: jobs.JobName(imp, stage)}, &job)
	if apierrors.IsNotFound(err) {
		return StageStatus{}, nil
	}
	if err != nil {
		return StageStatus{}, fmt.Errorf("reading job: %w", err)
	}
	if !metav1.IsControlledBy(&job, imp) {
		return StageStatus{}, fmt.Errorf("job %s exists but is not owned by this import", job.Name)
	}
	switch {
	case jobCondition(&job, batchv1.JobComplete):
		msg, err := e.terminationMessage(ctx, &job)
		if err != nil {
			return StageStatus{}, err
		}
		// A worker that succeeded completed its stage or stopped at a
		// safety threshold.
		out := runcontract.Decode(msg)
		if out.Kind != runcontract.SafetyStopped {
			out = runcontract.Outcome{Kind: runcontract.Completed}
		}
		return StageStatus{Found: true, Outcome: out}, nil
	case jobCondition(&job, batchv1.JobFailed):
		msg, err := e.terminationMessage(ctx, &job)
		if err != nil {
			return StageStatus{}, err
		}
		if msg == "" {
			msg = jobFailedMessage(&job)
		}
		out := runcontract.Decode(msg)
		if out.Kind == runcontract.Completed || out.Kind == runcontract.SafetyStopped {
			// The pod that wrote it succeeded; the Job failed after it
			// (its deadline, a deleted pod).
			out = runcontract.Outcome{Kind: runcontract.Failed, Message: jobFailedMessage(&job)}
		}
		return StageStatus{Found: true, Outcome: out}, nil
	}
	return StageStatus{Found: true, Running: true}, nil
}

// Running tells whether the Job of stage, as the cache has it, is owned
// by imp and has not ended.
func (e *Job) Running(ctx context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) bool {
	var job batchv1.Job
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: jobs.JobName(imp, stage)}, &job); err != nil {
		return false
	}
	return metav1.IsControlledBy(&job, imp) && !jobCondition(&job, batchv1.JobComplete) && !jobCondition(&job, batchv1.JobFailed)
}

func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func jobFailedMessage(job *batchv1.Job) string {
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			if c.Message != "" {
				return c.Reason + ": " + c.Message
			}
			return c.Reason
		}
	}
	return "the job failed"
}

// terminationMessage is the last line of the termination message of the
// worker container of the Job's pod that ended last, or "".
func (e *Job) terminationMessage(ctx context.Context, job *batchv1.Job) (string, error) {
	var pods corev1.PodList
	if err := e.APIReader.List(ctx, &pods, client.InNamespace(job.Namespace),
		client.MatchingLabels{jobs.JobNameLabel: job.Name, jobs.JobUIDLabel: string(job.UID)}); err != nil {
		return "", fmt.Errorf("listing the pods of job %s: %w", job.Name, err)
	}
	type ended struct {
		at  metav1.Time
		msg string
	}
	var all []ended
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != jobs.ContainerName {
				continue
			}
			for _, t := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
				if t != nil {
					all = append(all, ended{at: t.FinishedAt, msg: t.Message})
				}
			}
		}
	}
	if len(all) == 0 {
		return "", nil
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(&all[j].at) })
	return lastLine(all[len(all)-1].msg), nil
}

// lastLine is the last non-empty line of s: the worker writes one line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Reset deletes the finished Job of stage so that a new one can be created
// under the same name.
func (e *Job) Reset(ctx context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) error {
	return e.deleteJob(ctx, imp, stage)
}

// Cancel deletes the Jobs of both stages; Background propagation lets the
// garbage collector stop their pods.
func (e *Job) Cancel(ctx context.Context, imp *v1alpha1.UserImport) error {
	for _, s := range []runcontract.Stage{runcontract.StagePreview, runcontract.StageImport} {
		if err := e.deleteJob(ctx, imp, s); err != nil {
			return err
		}
	}
	return nil
}

func (e *Job) deleteJob(ctx context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) error {
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: imp.Namespace, Name: jobs.JobName(imp, stage)}}
	err := e.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting job %s: %w", job.Name, err)
	}
	return nil
}
