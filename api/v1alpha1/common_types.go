package v1alpha1

// SecretKeyRef selects one key of a Secret in the namespace of the object
// that refers to it. Secrets are never read from another namespace.
type SecretKeyRef struct {
	// name of the Secret, in the same namespace as the referring object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// ConfigMapKeyRef selects one key of a ConfigMap in the namespace of the
// object that refers to it.
type ConfigMapKeyRef struct {
	// name of the ConfigMap, in the same namespace as the referring object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the ConfigMap's data or binaryData.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Condition types shared by the kinds of this API. Ready, Reconciling and
// Stalled follow kstatus, so that `kubectl wait --for=condition=Ready`,
// Argo CD and Flux read the health of an object.
const (
	// ConditionReady is True when the object has reached the state its spec
	// asks for: a directory that answers, an import that completed, a
	// schedule that is running.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is still working
	// towards the state the spec asks for.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot make progress
	// without a change by a person (a bad spec, a missing Secret).
	ConditionStalled = "Stalled"
)
