// Live low-stock alerts for a dashboard.
import { graphql } from "relay-runtime";

export const subscription = graphql`
  subscription LowStockSubscription($productIds: [ID!]) {
    lowStock(productIds: $productIds) {
      crossedThreshold
      stock
      available
      reorderLevel
      occurredAt
      product {
        id
        stock
        status
      }
      movement {
        id
        kind
        delta
      }
    }
  }
`;
