// The explorer's input images, each fetched once and shared. The input list's thumbnail, the input
// panel and the 3-D view's input slab all show one input's image (as the model sees it); the server
// sends it with `Cache-Control: no-store` (ids start again with a new server), so every <img> and
// texture of it fetched it anew. Here each image URL is fetched once into a blob: URL, which all of
// them load from, until the page says that its input or model is gone.

/** The image at ``url``, loaded and decoded. */
export async function loadImage(url: string): Promise<HTMLImageElement> {
  const img = new Image();
  img.src = url;
  await img.decode();
  return img;
}

/** Fetches an image URL and gives a URL of its bytes (a blob: URL). */
export type Fetch = (url: string) => Promise<string>;

export class InputImages {
  private readonly kept = new Map<string, Promise<string>>();

  /** ``fetch`` gets an image URL's bytes as a blob: URL, which ``release`` frees once it is dropped. */
  constructor(
    private readonly fetch: Fetch,
    private readonly release: (blobUrl: string) => void = (u) => URL.revokeObjectURL(u),
  ) {}

  /** A URL that shows the image at ``url`` (a blob: URL), fetched on its first use only. A failed
   * fetch is not kept: the next use tries again. */
  blobUrl(url: string): Promise<string> {
    let entry = this.kept.get(url);
    if (!entry) {
      const made = this.fetch(url);
      entry = made;
      this.kept.set(url, made);
      made.catch(() => {
        if (this.kept.get(url) === made) this.kept.delete(url);
      });
    }
    return entry;
  }

  /** The image at ``url``, decoded (from its shared bytes). */
  async image(url: string): Promise<HTMLImageElement> {
    return loadImage(await this.blobUrl(url));
  }

  /** Drop the images whose URL is not in ``urls`` (of inputs or models that are gone). */
  keepOnly(urls: Set<string>): void {
    for (const url of [...this.kept.keys()]) if (!urls.has(url)) this.drop(url);
  }

  /** Drop every image (the page is left). */
  clear(): void {
    for (const url of [...this.kept.keys()]) this.drop(url);
  }

  /** How many images are kept (fetched or on their way). */
  get size(): number {
    return this.kept.size;
  }

  private drop(url: string): void {
    const entry = this.kept.get(url);
    this.kept.delete(url);
    entry?.then(this.release, () => {});
  }
}
