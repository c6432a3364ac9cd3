// Package archtest holds tests of the repository's structure rather than of
// its behaviour: the direction of imports between topicast's packages that
// README.md and docs/architecture.md state. It has no code of its own.
package archtest
