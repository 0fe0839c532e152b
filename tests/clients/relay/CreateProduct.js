// Creating a product and putting it at the head of the product list's connection(s).
import { graphql } from "relay-runtime";

export const mutation = graphql`
  mutation CreateProductMutation($input: CreateProductInput!, $connections: [ID!]!) {
    createProduct(input: $input)
      @prependNode(connections: $connections, edgeTypeName: "ProductEdge") {
      id
      ...ProductDetails_product
    }
  }
`;
