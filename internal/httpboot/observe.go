package httpboot

import "net/http"

// Observe wraps h to call answered with each request and the status code
// h answered it with (metrics, the boot events ring).
func Observe(h http.Handler, answered func(r *http.Request, code int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK // nothing written: net/http sends 200
		}
		answered(r, rec.status)
	})
}
