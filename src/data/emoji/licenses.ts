/**
 * License notes written beside the built dataset. The images are derivatives (resized,
 * composited on a background, re-encoded), which each license allows with attribution;
 * OpenMoji's ShareAlike term carries over to its derived images.
 */
import type { EmojiPackage, EmojiPackages, EmojiStyle } from './catalog.js';

export interface SourceLicense {
  style: EmojiStyle;
  /** SPDX id of the image license. */
  imageLicense: string;
  text: string;
  /** License files in the package, copied beside the dataset. */
  files: string[];
}

export function sourceLicenses(packages: EmojiPackages): SourceLicense[] {
  const pkg = (p: EmojiPackage): string => `npm package \`${p.name}\` ${p.version}`;
  return [
    {
      style: 'noto',
      imageLicense: 'Apache-2.0',
      files: ['LICENSE'],
      text:
        `Noto images from ${pkg(packages.google)}. The images are Google's Noto Color Emoji, available under the ` +
        'Apache License 2.0 (https://github.com/googlefonts/noto-emoji/blob/main/LICENSE), as stated in the package README; ' +
        "noto-emoji's flag images (third_party/region-flags) are public domain or otherwise exempt from copyright. " +
        'The metadata (emoji.json) is © Cal Henderson, MIT license (LICENSE in the package, copied here).',
    },
    {
      style: 'twemoji',
      imageLicense: 'CC-BY-4.0',
      files: ['LICENSE'],
      text:
        `Twemoji images from ${pkg(packages.twitter)}. Twemoji graphics are © Twitter, Inc and other contributors, ` +
        'licensed under Creative Commons Attribution 4.0 (https://creativecommons.org/licenses/by/4.0/), as stated in the package README. ' +
        'Attribution: "Twemoji by Twitter, Inc and other contributors, CC-BY 4.0". Metadata: MIT, © Cal Henderson.',
    },
    {
      style: 'openmoji',
      imageLicense: 'CC-BY-SA-4.0',
      files: ['LICENSE.txt'],
      text:
        `OpenMoji images from ${pkg(packages.openmoji)}, rasterised from SVG. "All emojis designed by OpenMoji – the open-source ` +
        'emoji and icon project. License: CC BY-SA 4.0" (https://creativecommons.org/licenses/by-sa/4.0/). ' +
        'As ShareAlike requires, the derived images in images/openmoji/ are licensed under CC BY-SA 4.0 as well. ' +
        "Annotations and tags in openmoji.json follow Unicode CLDR (Unicode License); they are used for the captions of all three styles.",
    },
  ];
}

export function licenseNote(packages: EmojiPackages, size: number): string {
  const lines = [
    '# Licenses of the emoji dataset',
    '',
    'This dataset was built by `dimba data emoji` from three npm packages. Each image keeps the license of its source;',
    `the \`license\` field of every manifest row names it. Changes made to every image: rendered or resized to ${size}x${size} px,`,
    'composited onto a solid background, and saved as PNG. Captions were generated from the packages\' metadata.',
    '',
  ];
  for (const l of sourceLicenses(packages)) {
    lines.push(`## ${l.style} (${l.imageLicense})`, '', l.text, '', `Package license files: ${l.files.map((f) => `licenses/${l.style}-${f}`).join(', ')}`, '');
  }
  return lines.join('\n');
}
