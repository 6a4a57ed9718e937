package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
)

// WebhookTenants returns the companies that have webhook endpoints, with only their ID and
// Webhooks filled in, for the webhook deliverer (httpapi/webhook). The endpoints are part of
// the tenant row (domain.Tenant.Webhooks); rows without any are skipped before decoding.
func (db *DB) WebhookTenants(context.Context) ([]domain.Tenant, error) {
	var out []domain.Tenant
	marker := []byte(`"webhooks":`)
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEach(func(k, v []byte) error {
			if !bytes.Contains(v, marker) {
				return nil
			}
			var t struct {
				ID       domain.TenantID  `json:"id"`
				Webhooks []domain.Webhook `json:"webhooks"`
			}
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("projections: decode tenant %s: %w", k, err)
			}
			if len(t.Webhooks) > 0 {
				out = append(out, domain.Tenant{ID: t.ID, Webhooks: t.Webhooks})
			}
			return nil
		})
	})
	return out, err
}
