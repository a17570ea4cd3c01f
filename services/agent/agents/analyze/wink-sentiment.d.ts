// wink-sentiment ships no types; the one call we make.
declare module "wink-sentiment" {
  export default function sentiment(text: string): {
    score: number;
    normalizedScore: number;
    tokenizedPhrase: unknown[];
  };
}
