// The product list (optionally searched), paged forward: a @connection on Query.products in a
// @refetchable pagination fragment (first/after), with a row fragment per product.
import { graphql } from "relay-runtime";

export const query = graphql`
  query ProductListQuery($count: Int!, $cursor: String, $search: String) {
    ...ProductList_query @arguments(count: $count, cursor: $cursor, search: $search)
  }
`;

export const fragment = graphql`
  fragment ProductList_query on Query
  @refetchable(queryName: "ProductListPaginationQuery")
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 20 }
    cursor: { type: "String" }
    search: { type: "String" }
  ) {
    products(first: $count, after: $cursor, search: $search) @connection(key: "ProductList_products") {
      __id
      totalCount
      edges {
        node {
          id
          ...ProductDetails_product
        }
      }
    }
  }
`;
