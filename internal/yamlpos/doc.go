// Package yamlpos decodes YAML strictly and reports every problem as
// FILE:LINE:COL: message. It is shared by the rule, rule-test and config
// formats so that they reject unknown fields and point at the offending
// text in the same way.
package yamlpos
