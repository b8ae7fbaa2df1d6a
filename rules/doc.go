// Package rules owns sentinel's rule-file format: parsing with
// gopkg.in/yaml.v3 (unknown fields rejected, FILE:LINE:COL in every error),
// validation, annotation templates, and the typed rule set that the engine
// runs. It reads files and nothing else: it knows nothing of the engine,
// of sources or of notifiers.
package rules
