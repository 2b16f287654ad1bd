package v1alpha1

// Encoding names a text encoding of a CSV file.
// +kubebuilder:validation:Enum=UTF-8;UTF-16;ISO-8859-1;Windows-1252
type Encoding string

// CSVFormat describes the layout of a CSV file.
type CSVFormat struct {
	// delimiter between fields: ",", ";", "|" or "\t". Empty (the default)
	// detects it from the header row.
	// +kubebuilder:validation:Enum="";",";";";"|";"\t"
	// +optional
	Delimiter string `json:"delimiter,omitempty"`

	// quote is the character that encloses fields holding delimiters,
	// quotes or line breaks.
	// +kubebuilder:default="\""
	// +kubebuilder:validation:Enum="\"";"'"
	// +optional
	Quote string `json:"quote,omitempty"`

	// encoding of the file: UTF-8 (the default; a byte-order mark is
	// skipped), UTF-16 (with a byte-order mark), ISO-8859-1 or Windows-1252.
	// +kubebuilder:default=UTF-8
	// +optional
	Encoding Encoding `json:"encoding,omitempty"`

	// header is true (the default) when the first row after skipRows names
	// the columns. Without a header, columns are named "1", "2", ….
	// +kubebuilder:default=true
	// +optional
	Header *bool `json:"header,omitempty"`

	// skipRows is the number of lines skipped before the header or the
	// first row.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	SkipRows int32 `json:"skipRows,omitempty"`

	// maxLineBytes is the longest record accepted; a longer one is an error
	// on its line.
	// +kubebuilder:default=65536
	// +kubebuilder:validation:Minimum=256
	// +kubebuilder:validation:Maximum=16777216
	// +optional
	MaxLineBytes int32 `json:"maxLineBytes,omitempty"`
}

// MappingTarget says what the values of a mapping entry become.
// +kubebuilder:validation:Enum=Attribute;Groups;Manager
type MappingTarget string

const (
	// TargetAttribute writes the values to the directory attribute named by
	// the entry's attribute.
	TargetAttribute MappingTarget = "Attribute"
	// TargetGroups makes the values the names of the groups the user
	// belongs to.
	TargetGroups MappingTarget = "Groups"
	// TargetManager makes the value the identity of the user's manager.
	TargetManager MappingTarget = "Manager"
)

// AttributeMapping computes one directory attribute from a row: from a
// column or from a template, then through transforms, then checked.
// +kubebuilder:validation:XValidation:rule="(has(self.column) ? 1 : 0) + (has(self.template) ? 1 : 0) + (has(self.value) ? 1 : 0) == 1",message="spec.mapping: each entry sets exactly one of column, template or value"
// +kubebuilder:validation:XValidation:rule="!has(self.target) || self.target == 'Attribute' || !has(self.identity) || !self.identity",message="spec.mapping: the identity entry has target Attribute"
// +kubebuilder:validation:XValidation:rule="!has(self.target) || self.target != 'Manager' || !has(self.split)",message="spec.mapping: an entry with target Manager takes one value, without split"
type AttributeMapping struct {
	// attribute is the directory attribute written, such as "userName",
	// "name.givenName", "emails" (SCIM), "mail" (LDAP) or a column (SQL).
	// With target Manager it is the attribute that holds the reference to
	// the manager's entry ("manager" in LDAP, the enterprise extension's
	// manager in SCIM, a column in SQL); with target Groups it only names
	// the entry.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Attribute string `json:"attribute"`

	// column is the CSV column (header name) the value comes from.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Column string `json:"column,omitempty"`

	// template computes the value with a Go template over the row's
	// columns, as in "{{.first_name}}.{{.last_name}}@corp.example".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Template string `json:"template,omitempty"`

	// value is a constant written on every user.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value *string `json:"value,omitempty"`

	// identity marks the entry that maps the directory's identity
	// attribute. Exactly one entry is marked.
	// +optional
	Identity bool `json:"identity,omitempty"`

	// transforms are applied in order to the value.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Transforms []Transform `json:"transforms,omitempty"`

	// default is used when the value is empty after the transforms.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Default *string `json:"default,omitempty"`

	// required makes an empty value an error on the row's line.
	// +optional
	Required bool `json:"required,omitempty"`

	// split turns the value into several values (a multi-valued attribute)
	// at every occurrence of this separator.
	// +kubebuilder:validation:MaxLength=8
	// +optional
	Split string `json:"split,omitempty"`

	// check validates each value: Email, Boolean or Date (RFC 3339 date,
	// YYYY-MM-DD). A value that fails is an error on the row's line.
	// +kubebuilder:validation:Enum=Email;Boolean;Date
	// +optional
	Check string `json:"check,omitempty"`

	// target says what the values become: Attribute (the default) writes
	// them to attribute. Groups makes them the names of the groups the
	// user is a member of (use split for several), kept in step in the
	// directory's groups (its spec.<provider>.groups). Manager makes the
	// value the identity of the user's manager: once the users are
	// written, it is resolved to the directory's reference to the
	// manager's entry and written to attribute.
	// +optional
	Target MappingTarget `json:"target,omitempty"`
}

// TransformType names a transform of a value.
// +kubebuilder:validation:Enum=Trim;Lower;Upper;RegexReplace;DateFormat
type TransformType string

// Transform types.
const (
	TransformTrim         TransformType = "Trim"
	TransformLower        TransformType = "Lower"
	TransformUpper        TransformType = "Upper"
	TransformRegexReplace TransformType = "RegexReplace"
	TransformDateFormat   TransformType = "DateFormat"
)

// Checks of spec.mapping[].check.
const (
	CheckEmail   = "Email"
	CheckBoolean = "Boolean"
	CheckDate    = "Date"
)

// Transform changes a value.
// +kubebuilder:validation:XValidation:rule="self.type != 'RegexReplace' || has(self.pattern)",message="spec.mapping.transforms: RegexReplace needs pattern (and replacement)"
// +kubebuilder:validation:XValidation:rule="self.type != 'DateFormat' || (has(self.fromLayout) && has(self.toLayout))",message="spec.mapping.transforms: DateFormat needs fromLayout and toLayout"
type Transform struct {
	// type is Trim (leading and trailing space), Lower, Upper,
	// RegexReplace (pattern → replacement, RE2 syntax, $1 for groups) or
	// DateFormat (fromLayout → toLayout, Go reference-time layouts such as
	// "02.01.2006" and "2006-01-02").
	Type TransformType `json:"type"`

	// pattern is the RE2 regular expression of RegexReplace.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Pattern string `json:"pattern,omitempty"`

	// replacement of RegexReplace; $1 … refer to groups.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Replacement string `json:"replacement,omitempty"`

	// fromLayout is the Go time layout DateFormat parses.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	FromLayout string `json:"fromLayout,omitempty"`

	// toLayout is the Go time layout DateFormat writes.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	ToLayout string `json:"toLayout,omitempty"`
}
