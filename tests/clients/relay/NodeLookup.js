// Object identification: one object and several objects by global id.
import { graphql } from "relay-runtime";

export const one = graphql`
  query NodeLookupQuery($id: ID!) {
    node(id: $id) {
      __typename
      id
      ...ProductDetails_product @alias(as: "product")
      ... on StockMovement {
        kind
        delta
      }
    }
  }
`;

export const many = graphql`
  query NodeLookupManyQuery($ids: [ID!]!) {
    nodes(ids: $ids) {
      __typename
      id
      ... on Product {
        sku
        stock
      }
      ... on StockMovement {
        kind
        stockAfter
      }
      ... on Reservation {
        quantity
        status
      }
    }
  }
`;
