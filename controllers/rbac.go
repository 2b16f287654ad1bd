// Package controllers holds the reconcilers of UserDirectory, UserImport
// and ImportSchedule.
package controllers

// The manager's permissions, generated into config/rbac/role.yaml.
//
// +kubebuilder:rbac:groups=userimport.dev,resources=userdirectories;userimports;importschedules,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=userimport.dev,resources=userdirectories/status;userimports/status;importschedules/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=userimport.dev,resources=userdirectories/finalizers;userimports/finalizers;importschedules/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// Pods are read (never cached) for the termination message of a finished
// worker Job.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
