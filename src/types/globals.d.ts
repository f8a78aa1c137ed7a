// Available since Node 20 (V8 11.3); TypeScript only declares them in lib es2024.
interface String {
  isWellFormed(): boolean;
  toWellFormed(): string;
}
