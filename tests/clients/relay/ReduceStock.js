// Taking stock: the payload's product updates the stored product by id.
import { graphql } from "relay-runtime";

export const mutation = graphql`
  mutation ReduceStockMutation($id: ID!, $quantity: Int!, $reason: String) {
    reduceStock(id: $id, quantity: $quantity, reason: $reason) {
      success
      newStock
      product {
        id
        stock
        available
        status
        version
      }
      movement {
        id
        kind
        delta
        stockAfter
      }
    }
  }
`;
