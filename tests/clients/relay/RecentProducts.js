// The product list (optionally searched), paged backward from its end: a @connection on
// Query.products in a @refetchable pagination fragment (last/before).
import { graphql } from "relay-runtime";

export const query = graphql`
  query RecentProductsQuery($count: Int!, $cursor: String, $search: String) {
    ...RecentProducts_query @arguments(count: $count, cursor: $cursor, search: $search)
  }
`;

export const fragment = graphql`
  fragment RecentProducts_query on Query
  @refetchable(queryName: "RecentProductsPaginationQuery")
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 20 }
    cursor: { type: "String" }
    search: { type: "String" }
  ) {
    products(last: $count, before: $cursor, search: $search) @connection(key: "RecentProducts_products") {
      edges {
        node {
          id
          sku
          stock
        }
      }
    }
  }
`;
