package metrics

import "sync"

// MaxModels bounds the values of the model label of FirstTokenSeconds and
// Tokens: a client may name any model id when it creates a conversation,
// and each id would otherwise add series to the registry for good.
const MaxModels = 50

// OtherModel is the model label of the models past the first MaxModels.
const OtherModel = "other"

// modelLabels holds the models that have a label of their own.
type modelLabels struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// ModelLabel returns the model label for model: model itself once it has
// one, OtherModel otherwise. With claim, a model without one gets one
// while fewer than MaxModels have: claim only for a model that answered
// (streamed a chunk), so that ids that name no model take no label.
func (m *Metrics) ModelLabel(model string, claim bool) string {
	l := &m.models
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[model]; ok {
		return model
	}
	if !claim || len(l.seen) >= MaxModels {
		return OtherModel
	}
	if l.seen == nil {
		l.seen = map[string]struct{}{}
	}
	l.seen[model] = struct{}{}
	return model
}
