package controllers

// The manager's permissions, generated into config/rbac/role.yaml.
//
// UserImports are created, cancelled (spec.action) and trimmed by their
// schedules; directories and schedules are only read.
// +kubebuilder:rbac:groups=userimport.dev,resources=userimports,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=userimport.dev,resources=userdirectories;importschedules,verbs=get;list;watch
// +kubebuilder:rbac:groups=userimport.dev,resources=userdirectories/status;userimports/status;importschedules/status,verbs=get;patch
// Owner references that block deletion need update on the owner's
// finalizers: Jobs and report Secrets name their UserImport, UserImports
// their ImportSchedule.
// +kubebuilder:rbac:groups=userimport.dev,resources=userimports/finalizers;importschedules/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// Secrets and ConfigMaps are read uncached, one key when needed. The report
// Secret is created here and patched by the worker; the manager holds
// patch itself because it grants it in the worker's Role. ConfigMaps are
// also listed and watched for their metadata only (names and
// resourceVersions): a schedule on change reads one again only when it
// changed.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// The worker's ServiceAccount, Role and RoleBinding; a Role someone
// changed is read (uncached) and put back.
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles,verbs=get;create;update
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=create
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// Pods are read (never cached) for the termination message of a finished
// worker Job.
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
