package httpapi

import (
	"errors"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/httperr"
	"github.com/chatgateway/gateway/protocol"
)

// Limits of GET …/events.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 1000
)

// eventsPage is how many events GET …/events reads from the log at a
// time: a reply is streamed, so it holds at most this many events in
// memory however many it returns.
const eventsPage = 8

// handlerFunc serves one API request for user and returns the status and
// JSON body of the answer, or an error to answer instead.
type handlerFunc func(r *http.Request, user string) (int, any, error)

// with adapts h to http: it calls h for the user authenticate named,
// then writes h's answer.
func (a *api) with(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r, auth.UserFrom(r.Context()))
		if err != nil {
			a.fail(w, err)
			return
		}
		if st, ok := body.(streamer); ok {
			a.stream(w, r, status, st)
			return
		}
		httperr.WriteJSON(w, status, body)
	}
}

// streamer is a JSON body too large to build in memory: it writes itself
// to w in parts.
type streamer func(w io.Writer) error

// stream answers with status and st's body. An error once the body has
// begun cannot change the status: it is logged and the response cut
// short, so that the client sees it incomplete rather than complete.
func (a *api) stream(w http.ResponseWriter, r *http.Request, status int, st streamer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := st(w); err != nil {
		if r.Context().Err() == nil {
			a.log.Error("streaming a reply failed", "path", r.URL.Path, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// withID adapts h, a handler of a route under /{id}, to http: it checks
// the id, then calls h with it.
func (a *api) withID(h func(r *http.Request, user, id string) (int, any, error)) http.HandlerFunc {
	return a.with(func(r *http.Request, user string) (int, any, error) {
		id := chi.URLParam(r, "id")
		if !protocol.ValidConversationID(id) {
			return 0, nil, protocol.Errorf(protocol.CodeBadRequest, "conversation: not a valid conversation id")
		}
		return h(r, user, id)
	})
}

func (a *api) list(r *http.Request, user string) (int, any, error) {
	q, err := query(r)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(q, protocol.DefaultListLimit, protocol.MaxListLimit)
	if err != nil {
		return 0, nil, err
	}
	before := q.Get("before")
	if len(before) > protocol.MaxCursorLen {
		return 0, nil, protocol.Errorf(protocol.CodeBadRequest, "before: longer than %d bytes", protocol.MaxCursorLen)
	}
	list, err := a.svc.List(r.Context(), user, before, limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list, nil
}
func (a *api) create(r *http.Request, user string) (int, any, error) {
	req, err := a.decodeRequest(r, protocol.TypeCreate, "")
	if err != nil {
		return 0, nil, err
	}
	if err := a.opts.Sizes.CheckCreate(req.(*protocol.Create)); err != nil {
		return 0, nil, err
	}
	if err := a.opts.SendLimiter.Allow(user); err != nil {
		return 0, nil, err
	}
	c, err := a.svc.Create(r.Context(), user, req.(*protocol.Create))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, c, nil
}

func (a *api) get(r *http.Request, user, id string) (int, any, error) {
	c, err := a.svc.Get(r.Context(), user, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (a *api) delete(r *http.Request, user, id string) (int, any, error) {
	if err := a.svc.Delete(r.Context(), user, id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, &protocol.Done{Type: protocol.ReplyDeleted, Conversation: id}, nil
}

func (a *api) history(r *http.Request, user, id string) (int, any, error) {
	q, err := query(r)
	if err != nil {
		return 0, nil, err
	}
	before, err := queryUint(q, "before")
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(q, protocol.DefaultHistoryLimit, protocol.MaxHistoryLimit)
	if err != nil {
		return 0, nil, err
	}
	h, err := a.svc.History(r.Context(), user, id, before, limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, h, nil
}

func (a *api) send(r *http.Request, user, id string) (int, any, error) {
	if err := a.opts.SendLimiter.Allow(user); err != nil {
		return 0, nil, err
	}
	req, err := a.decodeRequest(r, protocol.TypeSend, id)
	if err != nil {
		return 0, nil, err
	}
	ack, err := a.svc.Send(r.Context(), user, req.(*protocol.Send), nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, ack, nil
}

func (a *api) events(r *http.Request, user, id string) (int, any, error) {
	q, err := query(r)
	if err != nil {
		return 0, nil, err
	}
	after, err := queryUint(q, "after")
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(q, DefaultEventsLimit, MaxEventsLimit)
	if err != nil {
		return 0, nil, err
	}
	// created_at names the conversation after counts events of: another
	// one created under its id since is not found, as in subscribe.
	createdAt, err := queryTime(q, "created_at")
	if err != nil {
		return 0, nil, err
	}
	// The first page is read before answering, so that an unknown
	// conversation or a bad after still gets its error status.
	page, createdAt, err := a.svc.Events(r.Context(), user, id, createdAt, after, min(limit, eventsPage))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, streamer(func(w io.Writer) error {
		if _, err := io.WriteString(w, "["); err != nil {
			return err
		}
		for sent := 0; ; {
			for _, ev := range page {
				if sent > 0 {
					if _, err := io.WriteString(w, ","); err != nil {
						return err
					}
				}
				if _, err := w.Write(ev); err != nil {
					return err
				}
				sent++
			}
			// Seqs are gapless: the next page starts after the events sent.
			if len(page) < eventsPage || sent == limit {
				break
			}
			// Every page names the conversation of the first, so that
			// one created again under its id is not read on.
			page, _, err = a.svc.Events(r.Context(), user, id, createdAt, after+uint64(sent), min(limit-sent, eventsPage))
			if errors.Is(err, convo.ErrNotFound) || errors.Is(err, convo.ErrReplaced) {
				// Deleted meanwhile (and maybe created again): the
				// events sent are the conversation's as it was just
				// before, a shorter but true answer. Other errors cut
				// the answer short.
				break
			}
			if err != nil {
				return err
			}
		}
		_, err := io.WriteString(w, "]\n")
		return err
	}), nil
}
func (a *api) action(r *http.Request, user, id string) (int, any, error) {
	act, err := a.decodeAction(r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.opts.Sizes.CheckAction(act.Name, act.Turn, act.Input, act.Output); err != nil {
		return 0, nil, err
	}
	if err := a.opts.SendLimiter.Allow(user); err != nil {
		return 0, nil, err
	}
	ev, err := a.svc.PublishAction(r.Context(), user, id, act)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, ev, nil
}

func (a *api) cancel(r *http.Request, user, id string) (int, any, error) {
	if err := a.svc.Cancel(r.Context(), user, id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, &protocol.Done{Type: protocol.ReplyCancelled, Conversation: id}, nil
}
