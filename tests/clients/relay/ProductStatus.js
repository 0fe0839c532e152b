// A product's stock at a glance, stored next to the product records it describes.
import { graphql } from "relay-runtime";

export const query = graphql`
  query ProductStatusQuery($id: ID!) {
    productStatus(id: $id) {
      id
      sku
      stock
      status
    }
  }
`;
