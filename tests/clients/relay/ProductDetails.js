// A @refetchable Product fragment: Relay refetches it through Query.node(id:).
import { graphql } from "relay-runtime";

export const fragment = graphql`
  fragment ProductDetails_product on Product
  @refetchable(queryName: "ProductDetailsRefetchQuery") {
    id
    name
    sku
    stock
    reserved
    available
    reorderLevel
    status
    version
    updatedAt
  }
`;

export const query = graphql`
  query ProductDetailsQuery($id: ID!) {
    product(id: $id) {
      ...ProductDetails_product
      ...ProductMovements_product @arguments(count: 2)
    }
  }
`;
