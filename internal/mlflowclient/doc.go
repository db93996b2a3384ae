// Package mlflowclient is a small REST client for the MLflow Model Registry and the
// parts of the tracking API that registering a model version needs
// (experiments and runs).
//
// It speaks the plain HTTP/JSON API under <tracking URI>/api/2.0/mlflow that
// both MLflow 2.x and 3.x servers expose, and hides the wire quirks of that
// API from callers:
//
//   - GET requests carry their parameters in the query string; every other
//     method sends a JSON body. DELETE sends the JSON body and, because the
//     basic-auth plugin authorises DELETE from the query string when the body
//     is not parsed as JSON, repeats the scalar parameters in the query.
//   - A model version number is a string on the wire and an int here.
//   - Metric values may arrive as "NaN", "Infinity" or "-Infinity"; they are
//     decoded into [Float].
//   - Unset fields are omitted in both directions; an empty 200 body is {}.
//
// Failures are returned as *[APIError] (server replies) or wrapped transport
// errors. Error strings name the tracking URI with any userinfo removed and
// never contain the password or token.
//
// Retries follow MLflow's own client for reads (408, 429, 500, 502, 503, 504
// and transport errors, exponential backoff) but are stricter for writes: a
// POST or PATCH is resent only when the server surely did not act on it (the
// connection could not be opened, or the reply was 429 or 503). Every other
// write failure is returned, and the Ensure* helpers re-read the registry
// before writing again, so a retried call cannot duplicate an effect.
package mlflowclient
