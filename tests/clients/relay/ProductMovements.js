// A product's ledger: a @connection on Product.movements in a @refetchable pagination
// fragment, which Relay refetches through Query.node(id:).
import { graphql } from "relay-runtime";

export const fragment = graphql`
  fragment ProductMovements_product on Product
  @refetchable(queryName: "ProductMovementsPaginationQuery")
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 5 }
    cursor: { type: "String" }
  ) {
    movements(first: $count, after: $cursor) @connection(key: "ProductMovements_movements") {
      edges {
        node {
          id
          kind
          quantity
          delta
          stockBefore
          stockAfter
          reason
          createdAt
        }
      }
    }
  }
`;
